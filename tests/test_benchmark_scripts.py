"""Benchmark scripts that must not rot while no GPU is at hand: their smoke runs, on the CPU."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_benchmark_runs_end_to_end_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu.txt"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# ") and "commit " in first and "device " in text  # machine, date and commit head it
    rows = re.findall(r"^  (triton single pass|triton chunked \(8\))\s+([\d.]+)\s+([\d.]+)\s+([\d.e+-]+)$", text, re.M)
    assert [r[0] for r in rows] == ["triton single pass", "triton chunked (8)"]
    assert all(float(fwd) > 0 and float(both) > float(fwd) for _, fwd, both, _ in rows)
    assert float(rows[1][3]) < 1e-5  # the chunked kernel's output is the single pass's
    models = re.findall(
        r"^    (fp32|bf16)\s+([\d.]+) img/s\s+([\d.]+)x fp32.*?(([\d.]+) dB vs fp32|\(the reference\))$", text, re.M
    )
    assert [m[0] for m in models] == ["fp32", "bf16"] * 2
    assert all(float(m[1]) > 0 for m in models)
    assert all(m[3] == "(the reference)" for m in models[::2])  # fp32 is what bf16 is measured against
    models = [(*m[:3], m[4]) for m in models]
    assert float(models[1][3]) > 30  # the embedded trained model in bf16 stays close to fp32


def test_the_cpu_roofline_prints_each_op_class_against_the_floor(tmp_path):
    """Its smoke run: every op class with a time and a floor, the scan among them, and the forward's ratio."""
    out = tmp_path / "roof.txt"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cpu_roofline.py"), "--size", "64x48", "--models", "algnet-small",
         "--repeats", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    assert re.search(r"memory bandwidth [\d.]+ GB/s .* sgemm [\d.]+ GFLOP/s", text)
    classes = r"selective scan|causal conv1d|block glue|conv|matmul|norm|element-wise"
    rows = dict(re.findall(rf"^({classes})\s+([\d.]+)\s", text, re.M))
    assert set(rows) == {"selective scan", "causal conv1d", "block glue", "conv", "matmul", "norm", "element-wise"}, (
        text
    )
    # the kernels that do the work take measurable time even at this size; a small class may print 0.000
    assert all(float(rows[c]) > 0 for c in ("selective scan", "block glue", "conv", "matmul")), text
    ratio = re.search(r"sum of floors ([\d.]+) s: ([\d.]+)x the floor", text)
    assert ratio and float(ratio.group(1)) > 0 and float(ratio.group(2)) >= 1.0


def test_the_cpu_tiles_benchmark_compares_tiles_with_the_whole_image(tmp_path, monkeypatch):
    """Its smoke run, in this process (each configuration's fresh process replaced by a call here): the
    whole image and each tile size with a time, a ratio and the output difference."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("cpu_tiles", ROOT / "benchmarks" / "cpu_tiles.py")
    tiles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiles)
    ran = []

    def in_process(setup, run, repeats=1):
        state = setup()
        ran.append(state[0].options.tile)
        t = time.perf_counter()
        run(state)
        return time.perf_counter() - t, 0.0

    monkeypatch.setattr(tiles, "measure", in_process)
    out = tmp_path / "tiles.txt"
    argv = ["cpu_tiles.py", "--sizes", "160x96", "--tiles", "64,512", "--rounds", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    tiles.main()
    assert ran == [0, 64]  # a tile as large as the image is not a tiling
    text = out.read_text()
    rows = re.findall(r"^(whole|tiles 64)\s+([\d.]+)\s+([\d.]+)x\s+\d+\s+([\d.]+)\s+([\d.]+)$", text, re.M)
    assert [row[0] for row in rows] == ["whole", "tiles 64"], text
    (_, t_whole, r_whole, d_whole, _), (_, t_tiles, r_tiles, d_tiles, _) = rows
    assert float(r_whole) == 1.0 and float(d_whole) == 0.0
    assert float(t_whole) > 0 and float(t_tiles) > 0 and float(r_tiles) > 0
    assert float(d_tiles) > 0  # tiles cut the local converter's windows: not the same computation
    assert re.search(r"^fastest: (whole|tiles 64)$", text, re.M)


def _figures(root):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "check_figures.py"), str(root)], capture_output=True, text=True
    )
    return r.returncode, r.stdout


def test_the_scan_floor_benchmark_sets_the_kernel_against_the_machine(tmp_path, monkeypatch):
    """Its smoke run, in this process: the FMA rate, the three decay forms with their errors (the form
    used is exact to float32, the cheaper one is not, libm's is the slowest), and both scans' updates."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("scan_floor", ROOT / "benchmarks" / "scan_floor.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "floor.txt"
    argv = ["scan_floor.py", "--scale", "0.0001", "--rounds", "1", "--repeats", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    threads = torch.get_num_threads()
    try:
        bench.main()
    finally:
        torch.set_num_threads(threads)  # it measures one thread
    text = out.read_text()
    assert float(re.search(r"FMA rate ([\d.]+) GFLOP/s", text).group(1)) > 0
    forms = {
        m[0].strip(): (float(m[1]), float(m[2]))
        for m in re.findall(r"^  (\S.{27}) +([\d.]+) +([\d.e+-]+)$", text, re.M)
    }
    assert set(forms) == {"libm exp (scalar)", "degree-6 polynomial (used)", "degree-5 polynomial"}, text
    assert forms["degree-6 polynomial (used)"][1] < 1e-7 < forms["degree-5 polynomial"][1]
    assert forms["libm exp (scalar)"][0] > forms["degree-6 polynomial (used)"][0]
    rows = re.findall(
        r"^  (algnet-small, level 1|GoPro-size, level 4) +(\d+) +(\d+) +(\d+) +([\d.]+) +([\d.]+) ", text, re.M
    )
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("algnet-small, level 1", "32", "16"),
        ("GoPro-size, level 4", "512", "32"),
    ]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 for r in rows)
    assert re.search(r"floor of one update: the decay \([\d.]+ ns\) and 2 FMAs", text)


def test_every_figure_the_docs_quote_is_in_its_results_file():
    code, out = _figures(ROOT)
    assert code == 0, out
    assert (ROOT / "docs" / "benchmarks.md").read_text().count("](../benchmarks/results/") >= 20


def test_the_figure_check_fails_on_a_figure_changed_by_hand(tmp_path):
    import shutil

    for part in ("docs", "benchmarks/results"):
        shutil.copytree(ROOT / part, tmp_path / part)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert _figures(tmp_path)[0] == 0
    page = tmp_path / "docs" / "benchmarks.md"
    text = page.read_text()
    link = re.search(r"\[(\d+\.\d+) s\]\((\.\./benchmarks/results/[^)]+)\)", text)
    wrong = f"{float(link.group(1)) + 0.01:.2f}"
    page.write_text(text.replace(link.group(0), f"[{wrong} s]({link.group(2)})", 1))
    code, out = _figures(tmp_path)
    assert code == 1 and f"{wrong} (in '{wrong} s') is not in {link.group(2)}" in out
    # a figure written without its file is refused on the benchmarks page
    page.write_text(text + "| `benchmarks/x.py` | something | 3.5 s |\n")
    code, out = _figures(tmp_path)
    assert code == 1 and "a figure without its results file: 3.5 s" in out


def test_results_files_print_no_impossible_figures():
    """No row of a committed results file shows a measurement that was not one: NaN, an infinite PSNR, a
    negative memory peak."""
    import re
    from pathlib import Path

    bad = re.compile(r"\bnan\b|\binf dB\b|-\d+(\.\d+)? [MG]iB", re.IGNORECASE)
    results = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    found = [f"{p.name}: {line.strip()}" for p in sorted(results.glob("*.txt"))
             for line in p.read_text().splitlines() if not line.startswith("#") and bad.search(line)]  # fmt: skip
    assert found == []
