"""Training on the CPU: the chunked scan's hand-written backward against autograd through its step loops.

Two measurements, side by side in one run on one machine:

1. the selective scan alone, forward + backward, at the shapes of the embedded model's first level
   in a training step (batch 4, 128x128 patches: L=16384, D=32, N=16), with the largest relative
   difference of the gradients between the two;
2. one whole training step (forward, multi-scale loss, backward) of the embedded model on a batch
   of 4 random 128x128 patches, with the scan's backward done each way.

The baseline ("autograd") is the chunked scan written without in-place updates, so that autograd can
record it: the way this path was trained before it had its own backward.

Run: python benchmarks/train_cpu.py [--batch 4] [--patch 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, scan_training_inputs  # noqa: E402

import algnet_cli  # noqa: E402
from algnet_cli.model.checkpoint import load_checkpoint  # noqa: E402
from algnet_cli.ops import scan_chunked  # noqa: E402
from algnet_cli.ops.scan_chunked import _steps_first, selective_scan_chunked  # noqa: E402
from algnet_cli.train.loop import multiscale_loss  # noqa: E402

EMBEDDED = Path(algnet_cli.__file__).parent / "weights" / "algnet-small.safetensors"


def _block_autograd(u, dt, A, B, C, h0, chunk):
    """One block of the chunked scan with out-of-place updates only (the baseline)."""
    b, d, n = u.shape
    sf = functools.partial(_steps_first, chunk=chunk)
    dtT = sf(dt)
    decay = torch.exp((dtT.unsqueeze(-1) * A).clamp(min=-50.0))
    inputs = (dtT * sf(u)).unsqueeze(-1) * sf(B).unsqueeze(3)
    states = [inputs[0]]
    for t in range(1, chunk):
        states.append(torch.addcmul(inputs[t], decay[t], states[-1]))
    h = torch.stack(states)
    since_start = torch.exp((torch.cumsum(dtT, dim=0).unsqueeze(-1) * A).clamp(min=-50.0))
    entering = []
    state = h0
    for c in range(n // chunk):
        entering.append(state)
        state = torch.addcmul(h[-1, :, c], since_start[-1, :, c], state)
    h = torch.addcmul(h, since_start, torch.stack(entering, dim=1))
    y = torch.matmul(h, sf(C).unsqueeze(-1)).squeeze(-1)
    return y.permute(1, 3, 2, 0).reshape(b, d, n), state


def _scan_autograd(u, delta, A, B, C, chunk, block):
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    pieces = []
    for sl, pad in scan_chunked._blocks(u.shape[-1], block, chunk):
        y, state = _block_autograd(
            *(scan_chunked._padded(t, sl, pad) for t in (u, delta)), A,
            *(scan_chunked._padded(t, sl, pad) for t in (B, C)), state, chunk,
        )
        pieces.append(y[:, :, : sl.stop - sl.start])
    return torch.cat(pieces, dim=-1)


@contextlib.contextmanager
def baseline_backward():
    """Route the chunked scan's training path through autograd over its step loops."""
    original = scan_chunked._ChunkedScan.apply
    scan_chunked._ChunkedScan.apply = staticmethod(_scan_autograd)
    try:
        yield
    finally:
        scan_chunked._ChunkedScan.apply = original


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return (time.perf_counter() - t) / repeats, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    b, d, n, L = args.batch, 32, 16, args.patch * args.patch
    base, weights = scan_training_inputs(b, d, n, L)

    def scan_step():
        leaves = [t.clone().requires_grad_(True) for t in base]
        out = selective_scan_chunked(*leaves, delta_softplus=True)
        return torch.autograd.grad((out * weights).sum(), leaves)

    t_new, g_new = timed(scan_step, args.repeats)
    with baseline_backward():
        t_old, g_old = timed(scan_step, args.repeats)
    rel = max(((a - c).abs().max() / c.abs().max().clamp_min(1e-12)).item() for a, c in zip(g_new, g_old))

    net = load_checkpoint(EMBEDDED).train()
    x = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)
    y = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)

    def train_step():
        net.zero_grad(set_to_none=True)
        multiscale_loss(net(x), y, fft_weight=0.1).backward()

    s_new, _ = timed(train_step, args.repeats)
    with baseline_backward():
        s_old, _ = timed(train_step, args.repeats)

    print(f"{machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"scan forward+backward B={b} D={d} N={n} L={L} fp32")
    print(f"  autograd through the step loops   {t_old * 1e3:9.1f} ms")
    print(f"  hand-written backward             {t_new * 1e3:9.1f} ms   {t_old / t_new:5.2f}x faster")
    print(f"  largest relative difference of the 8 gradients: {rel:.1e}")
    print(f"training step of the embedded model, batch {args.batch}, {args.patch}x{args.patch} patches")
    print(f"  autograd through the step loops   {s_old:9.2f} s")
    print(f"  hand-written backward             {s_new:9.2f} s   {s_old / s_new:5.2f}x faster")


if __name__ == "__main__":
    main()
