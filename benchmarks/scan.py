"""Selective scan on the CPU: the sequential reference against the blocked path, side by side.

B=1, D=64, N=32, L=65536, float32, softplus on, D skip and z gate on (as ALGNet calls it).
Run: python benchmarks/scan.py [--length L]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure  # noqa: E402


def setup(length: int):
    import torch

    torch.manual_seed(0)
    b, d, n = 1, 64, 32
    return dict(
        u=torch.randn(b, d, length),
        delta=torch.randn(b, d, length),
        A=-torch.exp(torch.rand(d, n) * 3),
        B=torch.randn(b, n, length),
        C=torch.randn(b, n, length),
        D=torch.randn(d),
        z=torch.randn(b, d, length),
        delta_bias=torch.randn(d) * 0.5,
    )


def run(backend: str, s):
    from algnet_cli.ops import selective_scan

    return selective_scan(**s, delta_softplus=True, backend=backend)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--length", type=int, default=65536)
    args = ap.parse_args()
    print(f"selective scan, B=1 D=64 N=32 L={args.length}, float32, on {machine()}")
    results = {}
    for backend, repeats in (("reference", 1), ("chunked", 3)):
        t, mem = measure(functools.partial(setup, args.length), functools.partial(run, backend), repeats)
        results[backend] = (t, mem)
        print(f"  {backend:<10} {t:8.3f} s   peak {mem:8.1f} MiB")
    (tr, mr), (tc, mc) = results["reference"], results["chunked"]
    print(f"  chunked vs reference: {tr / tc:.1f}x faster, {mc / mr:.3f} of the peak memory (1/{mr / mc:.0f})")


if __name__ == "__main__":
    main()
