"""Benchmark scripts that must not rot while no GPU is at hand: their smoke runs, on the CPU."""

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_end_to_end_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu.txt"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("device ") and "commit " in text  # machine, date and commit head the results
    rows = re.findall(r"^  (triton single pass|triton chunked \(16\))\s+([\d.]+)\s+([\d.]+)\s+([\d.e+-]+)$", text, re.M)
    assert [r[0] for r in rows] == ["triton single pass", "triton chunked (16)"]
    assert all(float(fwd) > 0 and float(both) > float(fwd) for _, fwd, both, _ in rows)
    assert float(rows[1][3]) < 1e-5  # the chunked kernel's output is the single pass's
    models = re.findall(r"^    (fp32|bf16)\s+([\d.]+) img/s\s+([\d.]+)x fp32.*?([\d.]+|inf) dB vs fp32$", text, re.M)
    assert [m[0] for m in models] == ["fp32", "bf16"] * 2
    assert all(float(m[1]) > 0 for m in models)
    assert all(math.isinf(float(m[3])) for m in models[::2])  # fp32 against itself
    assert float(models[1][3]) > 30  # the embedded trained model in bf16 stays close to fp32
