"""Helpers for the benchmarks: run a function in a fresh process, report its time and peak memory."""

from __future__ import annotations

import multiprocessing as mp
import platform
import resource
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _hwm_mb() -> float | None:
    """The process's peak resident memory since the last :func:`_reset_peak` (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def _reset_peak() -> bool:
    """Set the peak (VmHWM) back to the current resident memory (Linux 4.0+): what comes after is
    measured from here, whatever setup allocated and freed before."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child(setup, run, repeats, queue, warmup=True):
    state = setup()
    base = _rss_mb()
    reset = _reset_peak()
    if warmup:
        run(state)  # warm-up (allocator, first-call costs): its memory counts, it is a call like the others
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - t)
    peak = _hwm_mb() if reset else None
    queue.put((min(times), float("nan") if peak is None else max(0.0, peak - base)))


def measure(setup, run, repeats: int = 3, warmup: bool = True) -> tuple[float, float]:
    """Best wall time (s) of ``run(setup())`` and its peak extra resident memory (MiB) over what setup
    left resident, in a fresh process; NaN where the peak cannot be reset (not Linux).
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(setup, run, repeats, q, warmup))
    p.start()
    result = q.get()
    p.join()
    return result


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def scan_training_inputs(b: int, d: int, n: int, length: int):
    """Seeded selective-scan inputs (u, delta, A, B, C, D, z, delta_bias) and output weights for a loss."""
    import torch

    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(b, d, length, generator=g),
        torch.randn(b, d, length, generator=g) - 2.0,
        -torch.exp(torch.rand(d, n, generator=g) * 3),
        torch.randn(b, n, length, generator=g),
        torch.randn(b, n, length, generator=g),
        torch.randn(d, generator=g),
        torch.randn(b, d, length, generator=g),
        torch.randn(d, generator=g) * 0.5,
    ]
    return inputs, torch.randn(b, d, length, generator=g)


def machine_slug() -> str:
    """A short file-name form of the machine: cpu-intel-xeon, cpu-amd-epyc, or the GPU's model."""
    import re

    try:
        import torch

        if torch.cuda.is_available():
            return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    except ImportError:
        pass
    cpu = machine().split(",")[0].lower()
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"\(r\)|\(tm\)|processor|cpu|\d+-core", " ", cpu)) if w]
    return "cpu-" + "-".join(words[:3])


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def recorded(name: str, out=None):
    """Run the benchmark with its printed output also saved to ``benchmarks/results/NAME_MACHINE.txt`` (or
    ``out``), headed by the machine, the date and the commit."""
    import contextlib
    import datetime
    import io
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    @contextlib.contextmanager
    def run():
        path = Path(out) if out else root / "benchmarks" / "results" / f"{name}_{machine_slug()}.txt"
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            commit = ""
        text = io.StringIO()
        text.write(f"# {machine()}; {datetime.date.today().isoformat()}; commit {commit or 'unknown'}\n")
        with contextlib.redirect_stdout(_Tee(sys.stdout, text)):
            yield
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.getvalue())
        print(f"results saved to {path}")

    return run()


def mib(mem: float) -> str:
    """A peak from :func:`measure` for a table: 'n/a' where it could not be measured."""
    return "     n/a    " if mem != mem else f"{mem:8.1f} MiB"
