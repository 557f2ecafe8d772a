"""GPU benchmark: the official-style fp32 baseline against our fp32 and bf16 paths, side by side.

Default GoPro-size configuration with seeded random weights, 1280x720 inputs. Prints for each path
images per second, peak GPU memory, and the max abs difference / PSNR of its output against the
fp32 baseline; the Triton scan against the PyTorch reference scan at L=921600, D=64, N=32; and the
largest image that runs whole on the card.

A second section runs trained weights (the embedded default model, or --weights FILE) on a real photo
(1280x720 crop of --photo), fp32 against bf16: random weights make the network amplify rounding far
more than trained ones do, so both are shown.

Run: python benchmarks/gpu.py                      (a few minutes on one GPU)
     python benchmarks/gpu.py --trained-only       (the trained section alone, under a minute)
     python benchmarks/gpu.py --quick              (tiny model and sizes; checks the script itself, CPU too)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))
from seeded_weights import seeded_image, seeded_state_dict  # noqa: E402

from algnet_cli.model import DEFAULT, ALGNet, ALGNetConfig  # noqa: E402
from algnet_cli.ops import resolve_backend, selective_scan  # noqa: E402
from algnet_cli.runner import Runner, RunOptions  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
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


def peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def psnr(a, b):
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def scan_section(device, length, fast_backend):
    g = torch.Generator(device="cpu").manual_seed(0)
    d, n = 64, 32
    args = [
        torch.randn(1, d, length, generator=g),
        torch.randn(1, d, length, generator=g),
        -torch.exp(torch.rand(d, n, generator=g) * 3),
        torch.randn(1, n, length, generator=g),
        torch.randn(1, n, length, generator=g),
        torch.randn(d, generator=g),
        torch.randn(1, d, length, generator=g),
        torch.randn(d, generator=g) * 0.5,
    ]
    args = [a.to(device) for a in args]
    run = lambda backend: selective_scan(*args, delta_softplus=True, backend=backend)  # noqa: E731
    run(fast_backend)
    t_fast, y_fast = timed(lambda: run(fast_backend), device, 5)
    t_ref, y_ref = timed(lambda: run("reference"), device, 1)
    rel = ((y_fast - y_ref).abs().max() / y_ref.abs().max()).item()
    print(
        f"scan L={length} D={d} N={n} fp32: reference {t_ref * 1e3:10.1f} ms | {fast_backend} {t_fast * 1e3:8.2f} ms"
        f" | {t_ref / t_fast:7.1f}x faster | max rel diff {rel:.1e}"
    )


def model_section(device, config, size, baseline_repeats, repeats):
    h, w = size
    net = ALGNet(config)
    net.load_state_dict(seeded_state_dict(net.state_dict(), seed=1))
    x = seeded_image((1, 3, h, w), seed=2)
    results = {}

    # baseline: the official path as closely as we can follow it here: fp32, no autocast, PyTorch reference scan
    base = ALGNet(config)
    base.load_state_dict(net.state_dict())
    base = base.to(device).eval().set_scan_backend("reference")
    xd = x.to(device)
    with torch.inference_mode():
        base(xd[..., :64, :64])  # cuDNN and allocator warm-up
        reset_peak(device)
        t, out = timed(lambda: base(xd)[-1][..., :h, :w].float(), device, baseline_repeats)
    reference = out.cpu()
    results["fp32 baseline (reference scan)"] = (t, peak_gib(device), 0.0, float("inf"))
    for label, precision in (("fp32 ours", "fp32"), ("bf16 ours", "bf16")):
        runner = Runner(net, RunOptions(device=str(device), precision=precision))
        runner(x)  # warm-up, Triton compilation
        reset_peak(device)
        t, out = timed(lambda: runner(x), device, repeats)  # noqa: B023
        out = out.cpu()
        results[label] = (t, peak_gib(device), (out - reference).abs().max().item(), psnr(out, reference))
    base_t = results["fp32 baseline (reference scan)"][0]
    print(f"model {config.describe()}, input {w}x{h}, seeded random weights")
    print(f"  {'path':<32}{'img/s':>10}{'x baseline':>12}{'peak GiB':>10}{'max|diff|':>12}{'PSNR dB':>10}")
    for label, (t, mem, diff, p) in results.items():
        print(f"  {label:<32}{1 / t:>10.3f}{base_t / t:>12.1f}{mem:>10.2f}{diff:>12.2e}{p:>10.1f}")
    return net


def trained_section(device, weights, photo, size, repeats):
    import numpy as np

    from algnet_cli.api import Deblurrer
    from algnet_cli.images import read_image

    h, w = size
    net = Deblurrer(model=weights, device="cpu").model
    img = read_image(photo) if photo else None
    if img is None or img.shape[0] < h or img.shape[1] < w:
        x = seeded_image((1, 3, h, w), seed=2)
        source = "seeded image"
    else:
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        crop = img[top : top + h, left : left + w, :3].astype(np.float32) / np.iinfo(img.dtype).max
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None]
        source = Path(photo).name
    rows = {}
    reference = None
    for label, precision in (("fp32 ours", "fp32"), ("bf16 ours", "bf16")):
        runner = Runner(net, RunOptions(device=str(device), precision=precision))
        runner(x)
        reset_peak(device)
        t, out = timed(lambda: runner(x), device, repeats)  # noqa: B023
        out = out.cpu().clamp(0, 1)
        reference = out if reference is None else reference
        rows[label] = (t, peak_gib(device), (out - reference).abs().max().item(), psnr(out, reference))
    print(
        f"trained weights {weights} ({net.config.describe()}), input {w}x{h} from {source}, outputs clamped to [0, 1]"
    )
    print(f"  {'path':<32}{'img/s':>10}{'x fp32':>12}{'peak GiB':>10}{'max|diff|':>12}{'PSNR dB':>10}")
    base_t = rows["fp32 ours"][0]
    for label, (t, mem, diff, p) in rows.items():
        print(f"  {label:<32}{1 / t:>10.3f}{base_t / t:>12.2f}{mem:>10.2f}{diff:>12.2e}{p:>10.1f}")


def largest_section(device, net, sizes):
    runner = Runner(net, RunOptions(device=str(device), precision="auto"))
    largest = None
    for h, w in sizes:
        try:
            reset_peak(device)
            t, _ = timed(lambda: runner(torch.rand(1, 3, h, w)), device, 1)  # noqa: B023
            largest = (w, h, t, peak_gib(device))
        except torch.OutOfMemoryError:
            break
    torch.cuda.empty_cache() if device.type == "cuda" else None
    if largest:
        w, h, t, mem = largest
        print(
            f"largest whole image tried that ran ({runner.precision_name}): {w}x{h} ({w * h / 1e6:.1f} MP) in {t:.2f} s, peak {mem:.1f} GiB"
            + ("" if (h, w) != sizes[-1] else " (the largest size tried)")
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model and sizes, to check the script")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-largest", action="store_true")
    ap.add_argument("--trained-only", action="store_true", help="only the trained-weights section")
    ap.add_argument("--weights", default="default", help="trained model for the second section (name or file)")
    ap.add_argument("--photo", default=None, help="photo to crop the trained section's input from")
    args = ap.parse_args()
    device = torch.device(args.device)
    fast = resolve_backend("auto", device.type)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}, scan auto -> {fast}")
    if args.quick:
        scan_section(device, 4096, fast)
        tiny = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))
        net = model_section(device, tiny, (72, 128), 1, 2)
        trained_section(device, args.weights, args.photo, (72, 128), 1)
        if not args.skip_largest:
            largest_section(device, net, [(128, 128), (256, 256)])
        return
    if args.trained_only:
        trained_section(device, args.weights, args.photo, (720, 1280), 5)
        return
    scan_section(device, 921600, fast)
    net = model_section(device, DEFAULT, (720, 1280), 1, 5)
    trained_section(device, args.weights, args.photo, (720, 1280), 5)
    if not args.skip_largest:
        largest_section(device, net, [(1080, 1920), (1440, 2560), (2160, 3840), (2880, 5120), (4320, 7680)])


if __name__ == "__main__":
    main()
