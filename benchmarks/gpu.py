"""The one command a GPU run needs: the selective scan and whole models, side by side, saved to a results file.

Sections (each printed as it finishes, then written with the machine, date and commit to
``benchmarks/results/gpu_<device>.txt``, or ``--out``):

1. **scan** at (batch 1, D 64, N 32, L 921600), a 1280x720 feature map: forward and forward + backward
   for the Triton single pass, the chunked Triton kernel and mamba-ssm's ``selective_scan_fn`` (when it
   imports), each with its largest relative difference from the single pass;
2. **models** on a 1280x720 image, fp32 and bf16, in images/s with peak memory, and bf16 against fp32 in
   PSNR: ``algnet-small`` (the embedded default, trained) and the GoPro-size configuration (trained with
   ``--gopro-weights FILE``, else seeded random weights, reported as such). The input is a crop of
   ``--photo`` (a real photo; ``examples/blurred/clock_motion.png`` unless given).

``--smoke`` runs every section at tiny sizes on the CPU, with the Triton kernels under
``TRITON_INTERPRET=1`` (set here), so the script cannot rot while no GPU is at hand; the test suite runs it.

Run: python benchmarks/gpu.py                   (a GPU; about 3 minutes)
     python benchmarks/gpu.py --smoke --out F   (the CPU; under a minute)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported

import torch  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "helpers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402
from seeded_weights import seeded_state_dict  # noqa: E402

from algnet_cli.model import DEFAULT, ALGNet, ALGNetConfig  # noqa: E402
from algnet_cli.ops import scan_triton  # noqa: E402
from algnet_cli.runner import Runner, RunOptions  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    """Mean seconds per call over ``repeats`` calls (after the caller's warm-up), and the last result."""
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync(device)
    return (time.perf_counter() - t) / repeats, out


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def psnr(a, b) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def scan_inputs(device, d, n, length, grad=False):
    g = torch.Generator().manual_seed(0)
    args = [
        torch.randn(1, d, length, generator=g),
        torch.randn(1, d, length, generator=g) - 1.0,
        -torch.exp(torch.rand(d, n, generator=g) * 3),
        torch.randn(1, n, length, generator=g),
        torch.randn(1, n, length, generator=g),
        torch.randn(d, generator=g),
        torch.randn(1, d, length, generator=g),
        torch.randn(d, generator=g) * 0.5,
    ]
    return [a.to(device).requires_grad_(grad) for a in args]


def scan_kernels(chunk, tile):
    kernels = {
        "triton single pass": lambda *a: scan_triton.selective_scan_triton(*a, True, chunk=0),
        f"triton chunked ({chunk})": lambda *a: scan_triton.selective_scan_triton(*a, True, chunk=chunk, tile=tile),
    }
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        kernels["mamba-ssm selective_scan_fn"] = lambda u, dt, A, B, C, D, z, bias: selective_scan_fn(
            u, dt, A, B[:, None], C[:, None], D, z, bias, delta_softplus=True
        )
    except Exception as e:  # noqa: BLE001 - not installed, or built for another torch
        print(f"  (mamba-ssm's selective_scan_fn does not import: {type(e).__name__})")
    return kernels


def scan_section(device, d, n, length, chunk, tile, repeats):
    print(f"scan (1, {d}, {n}, {length}), fp32, softplus, D, z and delta_bias; ms per call")
    print(f"  {'kernel':<32}{'forward':>10}{'fwd+bwd':>10}{'max rel diff':>14}")
    forward_args, grad_args = scan_inputs(device, d, n, length), scan_inputs(device, d, n, length, grad=True)
    weights = torch.randn(1, d, length, generator=torch.Generator().manual_seed(1)).to(device)
    baseline = None
    for label, kernel in scan_kernels(chunk, tile).items():
        with torch.no_grad():
            if repeats > 1:  # timed for real: compile and warm up first (the smoke run only checks)
                kernel(*forward_args)
            t_fwd, y = timed(lambda: kernel(*forward_args), device, repeats)  # noqa: B023

        def both():
            out = kernel(*grad_args)  # noqa: B023
            return torch.autograd.grad((out * weights).sum(), grad_args)

        if repeats > 1:
            both()
        t_both, _ = timed(both, device, repeats)
        baseline = y if baseline is None else baseline
        rel = ((y - baseline).abs().max() / baseline.abs().max()).item()
        print(f"  {label:<32}{t_fwd * 1e3:>10.2f}{t_both * 1e3:>10.2f}{rel:>14.1e}", flush=True)


def photo_tensor(photo, h, w):
    import numpy as np

    from algnet_cli.images import read_image

    img = read_image(photo)
    reps = (-(-h // img.shape[0]), -(-w // img.shape[1]), 1)
    img = np.tile(img[..., :3], reps)[:h, :w]  # a photo smaller than the size is tiled
    x = torch.from_numpy(np.ascontiguousarray(img).astype(np.float32) / np.iinfo(img.dtype).max)
    return x.permute(2, 0, 1)[None]


def model_rows(label, net, x, device, repeats):
    rows, reference = [], None
    for precision in ("fp32", "bf16"):
        runner = Runner(net, RunOptions(device=str(device), precision=precision))
        runner(x)  # warm-up, kernel compilation
        reset_peak(device)
        t, out = timed(lambda: runner(x), device, repeats)  # noqa: B023
        out = out.cpu().clamp(0, 1)
        reference = out if reference is None else reference
        rows.append((precision, t, peak_gib(device), psnr(out, reference)))
    print(f"  {label}")
    for precision, t, mem, p in rows:
        peak = f"{mem:>8.2f} GiB peak" if mem == mem else ""  # no peak counter on the CPU
        versus = "   (the reference)" if p == float("inf") else f"{p:>9.1f} dB vs fp32"
        print(f"    {precision:<6}{1 / t:>10.3f} img/s{rows[0][1] / t:>8.2f}x fp32{peak}{versus}")


def models_section(device, size, configs, repeats, photo, gopro_weights, gopro_label="GoPro-size configuration"):
    from algnet_cli import load_model

    h, w = size
    x = photo_tensor(photo, h, w)
    print(f"models on {w}x{h} from {Path(photo).name}: images/s, bf16 against fp32 (outputs clamped to [0, 1])")
    small = load_model("default")
    model_rows(f"algnet-small, embedded trained weights ({small.config.describe()})", small, x, device, repeats)
    if gopro_weights:
        gopro, how = load_model(gopro_weights), f"trained weights {gopro_weights}"
    else:
        gopro = ALGNet(configs)
        gopro.load_state_dict(seeded_state_dict(gopro.state_dict(), seed=1))
        how = "seeded random weights (no trained GoPro-size checkpoint given; PSNR is not a trained model's)"
    model_rows(f"{gopro_label}, {how} ({gopro.config.describe()})", gopro, x, device, repeats)


def header(device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else machine()
    return f"device {name}; torch {torch.__version__}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, Triton under its interpreter")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--photo", default=str(ROOT / "examples" / "blurred" / "clock_motion.png"))
    ap.add_argument("--gopro-weights", default=None, help="a trained GoPro-size checkpoint (name or file)")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/gpu_<device>.txt)")
    args = ap.parse_args()
    device = torch.device("cpu" if args.smoke else args.device)
    if device.type == "cpu" and not args.smoke:
        ap.error("no CUDA device here; run with --smoke to check the script on the CPU")
    slug = "smoke_cpu" if args.smoke else torch.cuda.get_device_name(device).split()[-1].lower()
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_{slug}.txt"
    with recorded("gpu", out):  # saved with the machine, the date and the commit
        print(header(device))
        if args.smoke:
            scan_section(device, 3, 2, 24, chunk=8, tile=4, repeats=1)  # three chunks
            tiny = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))
            models_section(device, (64, 96), tiny, 1, args.photo, args.gopro_weights, "a tiny stand-in for GoPro-size")
        else:
            scan_section(device, 64, 32, 921_600, chunk=scan_triton.CHUNK, tile=scan_triton.CHUNK_TILE, repeats=10)
            models_section(device, (720, 1280), DEFAULT, 5, args.photo, args.gopro_weights)


if __name__ == "__main__":
    main()
