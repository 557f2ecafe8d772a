"""Selective scan on the CPU: the chunked and the fused backends side by side (and the reference).

B=1, D=64, N=32, L=65536, float32, softplus on, D skip and z gate on (as ALGNet calls it).
Forward, then forward + backward (gradients of all eight inputs), each backend in a fresh process,
best of ``--repeats``. The fused kernels are compiled (or loaded from the cache) before timing, and
both backends run with the allocator setting ``load_model`` makes on the CPU (``algnet_cli.cpu``).

Run: python benchmarks/scan.py [--length L] [--repeats 5] [--reference]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure, mib, recorded  # noqa: E402


def setup(length: int, grad: bool):
    import torch

    from algnet_cli.cpu import keep_freed_memory
    from algnet_cli.ops import prepare

    prepare("fused", "cpu")  # compile or load the kernels outside the timing
    keep_freed_memory()  # the process setting load_model makes on the CPU, for both backends
    torch.manual_seed(0)
    b, d, n = 1, 64, 32
    inputs = dict(
        u=torch.randn(b, d, length),
        delta=torch.randn(b, d, length),
        A=-torch.exp(torch.rand(d, n) * 3),
        B=torch.randn(b, n, length),
        C=torch.randn(b, n, length),
        D=torch.randn(d),
        z=torch.randn(b, d, length),
        delta_bias=torch.randn(d) * 0.5,
    )
    if grad:
        for t in inputs.values():
            t.requires_grad_(True)
    return inputs


def run(backend: str, grad: bool, s):
    import torch

    from algnet_cli.ops import selective_scan

    if not grad:
        with torch.no_grad():
            return selective_scan(**s, delta_softplus=True, backend=backend)
    out = selective_scan(**s, delta_softplus=True, backend=backend)
    return torch.autograd.grad(out.sum(), list(s.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--length", type=int, default=65536)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference", action="store_true", help="also time the sequential reference (slow)")
    args = ap.parse_args()
    print(f"selective scan, B=1 D=64 N=32 L={args.length}, float32, on {machine()}")
    for grad, label in ((False, "forward"), (True, "forward + backward")):
        backends = (["reference"] if args.reference and not grad else []) + ["chunked", "fused"]
        times = {}
        for backend in backends:
            repeats = 1 if backend == "reference" else args.repeats
            t, mem = measure(
                functools.partial(setup, args.length, grad), functools.partial(run, backend, grad), repeats
            )
            times[backend] = t
            print(f"  {label:<18} {backend:<10} {t:8.3f} s   peak {mib(mem)}")
        print(f"  {label:<18} fused vs chunked: {times['chunked'] / times['fused']:.1f}x faster")


if __name__ == "__main__":
    with recorded("scan"):
        main()
