"""Deblurring quality on a fixed held-out set: blurred input vs unsharp masking vs the default model.

The set: 512x512 crops of the validation photos (never used for training; fetch them with
`python -m algnet_cli.train.photos DIR`), blurred with camera-shake trajectories and straight
motion up to 31 px and defocus disks, in linear light with noise, fixed seeds. The classical
baseline is unsharp masking with (sigma, amount) tuned on a separate tuning set. Prints mean
PSNR/SSIM of each and the default model's seconds per 1280x720 image on this machine.
Run: python benchmarks/quality.py --photos DIR/val [--count 24]
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
from _measure import machine  # noqa: E402

from algnet_cli import Deblurrer  # noqa: E402
from algnet_cli.metrics import psnr, ssim  # noqa: E402
from algnet_cli.train.datasets import SyntheticPairs  # noqa: E402

MIX = (("trajectory", 0.5), ("line", 0.2), ("disk", 0.3))  # motion up to 31 px and defocus, no easy cases


def pairs(photos: Path, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    ds = SyntheticPairs(photos, patch=512, length=count, seed=seed, max_kernel=31, jpeg_prob=0.0, mix=MIX)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="held-out photos (the val split)")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    tune = pairs(args.photos, 8, seed=777)
    grid = [(s, a) for s in (0.8, 1.2, 1.6, 2.4, 3.2, 4.8) for a in (0.3, 0.6, 1.0, 1.5, 2.0)]
    best = max(grid, key=lambda g: mean_scores([(unsharp(b, *g), s) for b, s in tune])[0])
    test = pairs(args.photos, args.count, seed=2024)
    deblurrer = Deblurrer(args.model, device="cpu")
    blurred = mean_scores([(b, s) for b, s in test])
    classical = mean_scores([(unsharp(b, *best), s) for b, s in test])
    model = mean_scores([(deblurrer.deblur(b), s) for b, s in test])
    x = torch.rand(1, 3, 720, 1280)
    deblurrer.runner.restore(x[..., :64, :64])
    t = time.perf_counter()
    deblurrer.runner.restore(x)
    seconds = time.perf_counter() - t
    print(
        f"held-out set: {args.count} crops of 512x512 from {args.photos}, motion <= 31 px and defocus; on {machine()}"
    )
    print(f"  {'':34}{'PSNR dB':>9}{'SSIM':>8}{'gain dB':>9}")
    for label, (p, s) in (
        ("blurred input", blurred),
        (f"unsharp mask (sigma {best[0]}, amount {best[1]})", classical),
        (f"model '{args.model}' (TLC)", model),
    ):
        print(f"  {label:<34}{p:>9.2f}{s:>8.4f}{p - blurred[0]:>+9.2f}")
    print(f"  model: {seconds:.1f} s per 1280x720 image (CPU, fp32)")


if __name__ == "__main__":
    main()
