"""Training through the selective scan: forward + backward of the Triton kernels against the chunked
PyTorch path (its hand-written backward), side by side on one device, with the largest relative
difference of the gradients.

Shapes are those of a training step of the embedded model at its first level (batch 16, 128x128
patches: L=16384, D=32, N=16). Run: python benchmarks/scan_backward.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import recorded, scan_training_inputs  # noqa: E402

from algnet_cli.ops import selective_scan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=16384)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--state", type=int, default=16)
    args = ap.parse_args()
    dev = torch.device(args.device)
    b, d, n, L = args.batch, args.dim, args.state, args.length
    base, weights = scan_training_inputs(b, d, n, L)
    base = [t.to(dev) for t in base]
    weights = weights.to(dev)

    def step(backend):
        leaves = [t.clone().requires_grad_(True) for t in base]
        out = selective_scan(*leaves, delta_softplus=True, backend=backend)
        return torch.autograd.grad((out * weights).sum(), leaves)

    def timed(backend, repeats):
        step(backend)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            grads = step(backend)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / repeats, grads

    t_tri, g_tri = timed("triton", 5)
    t_chk, g_chk = timed("chunked", 2)
    rel = max(((a - c).abs().max() / c.abs().max().clamp_min(1e-12)).item() for a, c in zip(g_tri, g_chk))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}; scan forward+backward B={b} D={d} N={n} L={L} fp32")
    print(f"  chunked (PyTorch)          {t_chk * 1e3:9.1f} ms")
    print(f"  triton (fused backward)    {t_tri * 1e3:9.1f} ms   {t_chk / t_tri:7.1f}x faster")
    print(f"  largest relative difference of the 8 gradients: {rel:.1e}")


if __name__ == "__main__":
    with recorded("scan_backward"):
        main()
