"""Deblurring quality on two fixed held-out sets: blurred input vs unsharp masking vs a previous and a new model.

The sets: 512x512 crops of the validation photos (never used for training; fetch them with
`python -m algnet_cli.train.photos DIR`), blurred in linear light with noise, fixed seeds:
- "existing": camera-shake trajectories and straight motion up to 31 px, and defocus disks (unchanged, so
  figures stay comparable across releases);
- "long motion": camera shake and straight motion of 33 to 64 px.
The classical baseline is unsharp masking with (sigma, amount) tuned on a separate tuning set. Prints mean
PSNR/SSIM of each, the share of crops where the new model beats the previous one, and the new model's
seconds per 1280x720 image on this machine.
Run: python benchmarks/quality.py --photos DIR/val [--count 24] [--model NEW] [--previous OLD]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

from algnet_cli import Deblurrer  # noqa: E402
from algnet_cli.metrics import psnr, ssim  # noqa: E402
from algnet_cli.train.datasets import SyntheticPairs  # noqa: E402

MIX = (("trajectory", 0.5), ("line", 0.2), ("disk", 0.3))  # motion up to 31 px and defocus, no easy cases


def pairs(photos: Path, count: int, seed: int, long: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    from algnet_cli.train.kernels import LONG_MIX

    mix, max_kernel = (LONG_MIX, 67) if long else (MIX, 31)
    ds = SyntheticPairs(photos, patch=512, length=count, seed=seed, max_kernel=max_kernel, jpeg_prob=0.0, mix=mix)
    out = []
    for i in range(count):
        b, s = ds[i]
        to8 = lambda t: np.round(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)  # noqa: E731
        out.append((to8(b), to8(s)))
    return out


def unsharp(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    f = img.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), sigma)
    return np.clip(np.round(f + amount * (f - blurred)), 0, 255).astype(np.uint8)


def mean_scores(results: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    return float(np.mean([psnr(a, b) for a, b in results])), float(np.mean([ssim(a, b) for a, b in results]))


def evaluate(test, best, models: dict) -> dict:
    """Mean (PSNR, SSIM) of the blurred input, unsharp masking and each model; and each model's per-crop PSNR."""
    rows = {"blurred input": mean_scores(test), f"unsharp mask (sigma {best[0]}, amount {best[1]})": None}
    rows[f"unsharp mask (sigma {best[0]}, amount {best[1]})"] = mean_scores([(unsharp(b, *best), s) for b, s in test])
    per_crop = {}
    for label, deblurrer in models.items():
        outs = [(deblurrer.deblur(b), s) for b, s in test]
        rows[label] = mean_scores(outs)
        per_crop[label] = [psnr(a, b) for a, b in outs]
    return {"rows": rows, "per_crop": per_crop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="held-out photos (the val split)")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--model", default="default", help="the new model")
    ap.add_argument("--previous", default=None, help="the previously shipped model, for comparison")
    args = ap.parse_args()
    tune = pairs(args.photos, 8, seed=777)
    grid = [(s, a) for s in (0.8, 1.2, 1.6, 2.4, 3.2, 4.8) for a in (0.3, 0.6, 1.0, 1.5, 2.0)]
    best = max(grid, key=lambda g: mean_scores([(unsharp(b, *g), s) for b, s in tune])[0])
    models = {}
    if args.previous:
        models[f"previous '{args.previous}' (TLC)"] = Deblurrer(args.previous, device="cpu")
    models[f"model '{args.model}' (TLC)"] = deblurrer = Deblurrer(args.model, device="cpu")
    sets = {
        "existing (motion <= 31 px, defocus)": evaluate(pairs(args.photos, args.count, seed=2024), best, models),
        "long motion (33 to 64 px)": evaluate(pairs(args.photos, args.count, seed=4048, long=True), best, models),
    }
    x = torch.rand(1, 3, 720, 1280)
    deblurrer.runner.restore(x)  # warm-up at full size
    t = time.perf_counter()
    deblurrer.runner.restore(x)
    seconds = time.perf_counter() - t
    print(f"held-out sets: {args.count} crops of 512x512 each from {args.photos}; on {machine()}")
    names = list(sets)
    print(f"  {'':40}" + "".join(f"{n[:30]:>32}" for n in names))
    print(f"  {'':40}" + "".join(f"{'PSNR dB':>10}{'SSIM':>9}{'gain dB':>13}" for _ in names))
    for label in sets[names[0]]["rows"]:
        cells = ""
        for n in names:
            p, s_ = sets[n]["rows"][label]
            cells += f"{p:>10.2f}{s_:>9.4f}{p - sets[n]['rows']['blurred input'][0]:>+13.2f}"
        print(f"  {label:<40}{cells}")
    if args.previous:
        old, new = list(models)
        for n in names:
            a, b = sets[n]["per_crop"][old], sets[n]["per_crop"][new]
            wins = sum(y > x for x, y in zip(a, b))
            print(
                f"  {n}: new better than previous on {wins} of {len(a)} crops ({100 * wins / len(a):.0f}%), mean {np.mean(b) - np.mean(a):+.2f} dB"
            )
    print(f"  model '{args.model}': {seconds:.1f} s per 1280x720 image (CPU, fp32, after a warm-up)")


if __name__ == "__main__":
    with recorded("quality"):
        main()
