"""Scoring speed: `algnet score`'s engine against scikit-image in a loop, on the same files.

100 pairs of 1280x720 8-bit PNGs (a real photo, shifted crops, with noise) are written to a
temporary folder; both sides read them with the same reader and compute PSNR and SSIM
(Gaussian window, sigma 1.5, sample covariance off, per channel). Prints pairs per second of
each and the ratio, and checks that the numbers agree.
Run: python benchmarks/score.py [--pairs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

from algnet_cli.images import read_image  # noqa: E402
from algnet_cli.metrics import Protocol  # noqa: E402
from algnet_cli.scoring import score_folders  # noqa: E402


def make_pairs(root: Path, n: int) -> None:
    from skimage import data

    base = cv2.resize(data.astronaut(), (1600, 1000), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = rng.integers(0, 1000 - 720), rng.integers(0, 1600 - 1280)
        gt = base[y : y + 720, x : x + 1280]
        pred = np.clip(gt + rng.normal(0, 5, gt.shape), 0, 255).astype(np.uint8)
        for folder, img in (("gt", gt), ("pred", pred)):
            (root / folder).mkdir(exist_ok=True)
            cv2.imwrite(
                str(root / folder / f"{i:04d}.png"),
                cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 1],
            )


def skimage_loop(root: Path, n: int) -> list[tuple[float, float]]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = []
    for i in range(n):
        pred, gt = read_image(root / "pred" / f"{i:04d}.png"), read_image(root / "gt" / f"{i:04d}.png")
        p = peak_signal_noise_ratio(gt, pred, data_range=255)
        s = structural_similarity(
            gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
        )
        out.append((p, s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_pairs(root, args.pairs)
        t = time.perf_counter()
        report = score_folders(root / "pred", root / "gt", Protocol())
        ours = time.perf_counter() - t
        t = time.perf_counter()
        ref = skimage_loop(root, args.pairs)
        theirs = time.perf_counter() - t
    diff_p = max(abs(r.psnr - p) for r, (p, _) in zip(report.rows, ref))
    diff_s = max(abs(r.ssim - s) for r, (_, s) in zip(report.rows, ref))
    print(f"PSNR + SSIM, {args.pairs} pairs of 1280x720 8-bit PNG (read included), on {machine()}")
    print(f"  algnet score engine   {args.pairs / ours:7.2f} pairs/s   ({ours:.1f} s)")
    print(f"  scikit-image loop     {args.pairs / theirs:7.2f} pairs/s   ({theirs:.1f} s)")
    print(
        f"  ratio                 {theirs / ours:7.2f}x faster   (max |dPSNR| {diff_p:.1e}, max |dSSIM| {diff_s:.1e})"
    )


if __name__ == "__main__":
    with recorded("score"):
        main()
