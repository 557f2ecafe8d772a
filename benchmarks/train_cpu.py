"""Training on the CPU: the chunked scan's backward against the fused kernel's, side by side in one run.

1. the selective scan alone, forward + backward, at the shapes of the embedded model's first level
   in a training step (batch 4, 128x128 patches: L=16384, D=32, N=16), with the largest relative
   difference of the gradients between the two backends;
2. one whole training step (forward, multi-scale loss, backward) of the embedded model on a batch
   of 4 random 128x128 patches, with each backend.

Run: python benchmarks/train_cpu.py [--batch 4] [--patch 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded, scan_training_inputs  # noqa: E402

import algnet_cli  # noqa: E402
from algnet_cli.model.checkpoint import load_checkpoint  # noqa: E402
from algnet_cli.ops import prepare, selective_scan  # noqa: E402
from algnet_cli.train.loop import multiscale_loss  # noqa: E402

EMBEDDED = Path(algnet_cli.__file__).parent / "weights" / "algnet-small.safetensors"


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best of ``repeats`` calls after a warm-up, and the last result."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    prepare("fused", "cpu")  # compile or load the kernels outside the timing
    g = torch.Generator().manual_seed(0)
    b, d, n, L = args.batch, 32, 16, args.patch * args.patch
    base, weights = scan_training_inputs(b, d, n, L)

    def scan_step(backend):
        leaves = [t.clone().requires_grad_(True) for t in base]
        out = selective_scan(*leaves, delta_softplus=True, backend=backend)
        return torch.autograd.grad((out * weights).sum(), leaves)

    t_chunked, g_chunked = timed(lambda: scan_step("chunked"), args.repeats)
    t_fused, g_fused = timed(lambda: scan_step("fused"), args.repeats)
    rel = max(((a - c).abs().max() / c.abs().max().clamp_min(1e-12)).item() for a, c in zip(g_fused, g_chunked))

    net = load_checkpoint(EMBEDDED).train()
    x = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)
    y = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)

    def train_step(backend):
        net.set_scan_backend(backend)
        net.zero_grad(set_to_none=True)
        multiscale_loss(net(x), y, fft_weight=0.1).backward()

    s_chunked, _ = timed(lambda: train_step("chunked"), args.repeats)
    s_fused, _ = timed(lambda: train_step("fused"), args.repeats)

    print(f"{machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"scan forward+backward B={b} D={d} N={n} L={L} fp32")
    print(f"  chunked (blocked PyTorch, hand-written backward)  {t_chunked * 1e3:9.1f} ms")
    print(
        f"  fused (numba kernels)                            {t_fused * 1e3:9.1f} ms   {t_chunked / t_fused:5.2f}x faster"
    )
    print(f"  largest relative difference of the 8 gradients: {rel:.1e}")
    print(f"training step of the embedded model, batch {args.batch}, {args.patch}x{args.patch} patches")
    print(f"  chunked                                          {s_chunked:9.2f} s")
    print(f"  fused                                            {s_fused:9.2f} s   {s_chunked / s_fused:5.2f}x faster")


if __name__ == "__main__":
    with recorded("train_cpu"):
        main()
