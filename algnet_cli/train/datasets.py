"""Training pairs: synthetic blur on sharp photos, or real pairs in the GoPro folder layout.

Item i is a pure function of (seed, i): any worker, any resumed run, gets the same pair.
Items are (blurred, sharp), each (3, P, P) float32 in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..images import is_image_path, read_image
from .synth import make_pair


def _augment(rng: np.random.Generator, *imgs: np.ndarray) -> list[np.ndarray]:
    k = int(rng.integers(4))
    flip = rng.uniform() < 0.5
    out = []
    for im in imgs:
        im = np.rot90(im, k)
        out.append(np.ascontiguousarray(im[:, ::-1] if flip else im))
    return out


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)


def _rgb8(img: np.ndarray) -> np.ndarray:
    """Any decoded photo (8/16-bit, float in [0, 1]) as H x W x 3 uint8, by the one 8-bit conversion."""
    from ..images import to_8bit

    img = to_8bit(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


class SyntheticPairs(torch.utils.data.Dataset):
    """Random crops of sharp photos, blurred on the fly (see :mod:`algnet_cli.train.synth`)."""

    def __init__(
        self,
        photos: list[Path] | Path,
        patch: int = 128,
        length: int = 10**9,
        seed: int = 0,
        max_kernel: int = 31,
        jpeg_prob: float = 0.3,
        min_detail: float = 0.015,
        mix=None,
        realistic: bool = False,
    ):
        if isinstance(photos, Path):
            photos = sorted(p for p in photos.rglob("*") if is_image_path(p))
        if not photos:
            raise ValueError("no training photos found")
        self.images = [_rgb8(read_image(p)) for p in photos]
        self.margin = max_kernel // 2 + 1
        side = patch + 2 * self.margin
        self.images = [im for im in self.images if min(im.shape[:2]) >= side]
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.patch, self.length, self.seed = patch, length, seed
        self.max_kernel, self.jpeg_prob, self.min_detail, self.mix = max_kernel, jpeg_prob, min_detail, mix
        self.realistic = realistic

    def __len__(self) -> int:
        return self.length

    def _region(self, rng: np.random.Generator) -> np.ndarray:
        side = self.patch + 2 * self.margin
        best, best_detail = None, -1.0
        for _ in range(10):  # skip flat patches (skies, defocused backgrounds)
            im = self.images[int(rng.choice(len(self.images), p=self.weights))]
            y = int(rng.integers(0, im.shape[0] - side + 1))
            x = int(rng.integers(0, im.shape[1] - side + 1))
            region = im[y : y + side, x : x + side]
            g = region.astype(np.float32).mean(axis=2) / 255.0
            detail = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
            if detail > best_detail:
                best, best_detail = region, detail
            if detail >= self.min_detail:
                break
        return best

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        blurred, sharp, _ = make_pair(
            self._region(rng), rng, self.patch, self.max_kernel, self.jpeg_prob, self.mix, self.realistic
        )
        blurred, sharp = _augment(rng, blurred, sharp)
        return _to_tensor(blurred), _to_tensor(sharp)


def paired_files(root: Path) -> list[tuple[Path, Path]]:
    """(blurred, sharp) files of every ``blur/`` folder under root with a sibling ``sharp/``, matched by name."""
    pairs = []
    for blur_dir in sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and p.name == "blur"):
        sharp_dir = blur_dir.parent / "sharp"
        if not sharp_dir.is_dir():
            continue
        sharp = {p.stem: p for p in sharp_dir.iterdir() if is_image_path(p)}
        for b in sorted(p for p in blur_dir.iterdir() if is_image_path(p)):
            if b.stem in sharp:
                pairs.append((b, sharp[b.stem]))
    return pairs


class PairedFolder(torch.utils.data.Dataset):
    """Real pairs in the GoPro layout (``.../blur/x.png`` with ``.../sharp/x.png``), random crops."""

    def __init__(self, root: Path, patch: int = 128, length: int | None = None, seed: int = 0):
        self.pairs = paired_files(Path(root))
        if not self.pairs:
            raise ValueError(f"{root}: no blur/ and sharp/ folders with matching files")
        self.patch, self.seed = patch, seed
        self.length = length if length is not None else len(self.pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        b_path, s_path = self.pairs[int(i) % len(self.pairs)]
        blurred, sharp = _rgb8(read_image(b_path)), _rgb8(read_image(s_path))
        if blurred.shape != sharp.shape:
            raise ValueError(f"{b_path}: size differs from {s_path}")
        h, w = sharp.shape[:2]
        p = min(self.patch, h, w)
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        crops = [im[y : y + p, x : x + p].astype(np.float32) / 255.0 for im in (blurred, sharp)]
        blurred, sharp = _augment(rng, *crops)
        return _to_tensor(blurred), _to_tensor(sharp)
