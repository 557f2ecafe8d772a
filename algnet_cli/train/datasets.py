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
    """Any decoded photo (grey, grey + alpha, RGB, RGBA; 8/16-bit or float in [0, 1]) as H x W x 3
    uint8, by the one 8-bit conversion; alpha dropped."""
    from ..images import to_8bit

    img = to_8bit(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] <= 2:
        img = np.repeat(img[..., :1], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def load_photos(paths: list[Path], side: int) -> tuple[list[tuple[Path, tuple[int, int]]], list[tuple[str, str]]]:
    """Every photo read and checked before training: (each usable one's path and (height, width),
    and (path, reason) for each one refused: unreadable, or smaller than ``side`` pixels). The
    pixels are not kept: training decodes them again on demand (memory does not grow with the number
    of photos)."""
    from ..errors import AlgnetError

    kept, refused = [], []
    for p in paths:
        try:
            img = _rgb8(read_image(p))
        except (AlgnetError, OSError) as e:
            refused.append((str(p), getattr(e, "reason", None) or str(e)))
            continue
        h, w = img.shape[:2]
        if min(h, w) < side:
            refused.append(
                (str(p), f"{w}x{h}, smaller than the {side} px a training crop needs (--patch and the blur margin)")
            )
            continue
        kept.append((p, (h, w)))
    return kept, refused


#: the decoded photos a dataset keeps at once (per data-loader worker), in bytes
PHOTO_CACHE_BYTES = 256 << 20


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
        from ..errors import UsageError

        folder = photos if isinstance(photos, Path) else None
        if folder is not None:
            if not folder.is_dir():
                raise UsageError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'} of photos")
            photos = sorted(p for p in folder.rglob("*") if is_image_path(p))
        assert isinstance(photos, list)
        if not photos:
            raise UsageError(f"{folder or 'the photo list'}: no photos in it (.png, .jpg, .tif, .webp, ...)")
        self.margin = max_kernel // 2 + 1
        side = patch + 2 * self.margin
        self.photos, self.refused = load_photos(photos, side)
        if not self.photos:
            first = "; ".join(f"{p}: {why}" for p, why in self.refused[:3])
            raise UsageError(f"{folder or 'the photo list'}: none of the {len(photos)} photos can be used ({first})")
        self._cache: dict[int, np.ndarray] = {}  # the last decoded photos, within PHOTO_CACHE_BYTES
        areas = np.array([h * w for _, (h, w) in self.photos], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.patch, self.length, self.seed = patch, length, seed
        self.max_kernel, self.jpeg_prob, self.min_detail, self.mix = max_kernel, jpeg_prob, min_detail, mix
        self.realistic = realistic

    def __len__(self) -> int:
        return self.length

    def _region(self, rng: np.random.Generator) -> np.ndarray:
        side = self.patch + 2 * self.margin
        best: np.ndarray | None = None
        best_detail = -1.0
        for _ in range(10):  # skip flat patches (skies, defocused backgrounds)
            im = self._photo(int(rng.choice(len(self.photos), p=self.weights)))
            y = int(rng.integers(0, im.shape[0] - side + 1))
            x = int(rng.integers(0, im.shape[1] - side + 1))
            region = im[y : y + side, x : x + side]
            g = region.astype(np.float32).mean(axis=2) / 255.0
            detail = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
            if detail > best_detail:
                best, best_detail = region, detail
            if detail >= self.min_detail:
                break
        assert best is not None  # the first region always becomes the best (its detail is >= 0)
        return best

    def _photo(self, k: int) -> np.ndarray:
        """Photo ``k``, decoded on demand; the most recent ones are kept within PHOTO_CACHE_BYTES."""
        img = self._cache.pop(k, None)
        if img is None:
            img = _rgb8(read_image(self.photos[k][0]))
        self._cache[k] = img  # most recent last
        while sum(a.nbytes for a in self._cache.values()) > PHOTO_CACHE_BYTES and len(self._cache) > 1:
            self._cache.pop(next(iter(self._cache)))
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        blurred, sharp, _ = make_pair(
            self._region(rng), rng, self.patch, self.max_kernel, self.jpeg_prob, self.mix, self.realistic
        )
        blurred, sharp = _augment(rng, blurred, sharp)
        return _to_tensor(blurred), _to_tensor(sharp)


def paired_files(root: Path, unmatched: list[str] | None = None) -> list[tuple[Path, Path]]:
    """(blurred, sharp) files of every ``blur/`` folder under root with a sibling ``sharp/``, matched by
    name; files without a partner are added to ``unmatched``."""
    pairs = []
    for blur_dir in sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and p.name == "blur"):
        sharp_dir = blur_dir.parent / "sharp"
        if not sharp_dir.is_dir():
            continue
        sharp = {p.stem: p for p in sharp_dir.iterdir() if is_image_path(p)}
        blurred = {p.stem: p for p in blur_dir.iterdir() if is_image_path(p)}
        for stem in sorted(blurred):
            if stem in sharp:
                pairs.append((blurred[stem], sharp[stem]))
        if unmatched is not None:
            unmatched += [str(blurred[s]) for s in sorted(set(blurred) - set(sharp))]
            unmatched += [str(sharp[s]) for s in sorted(set(sharp) - set(blurred))]
    return pairs


def check_pairs(pairs: list[tuple[Path, Path]], patch: int) -> tuple[list, list[tuple[str, str]]]:
    """Pairs whose headers read, whose sizes match, and that hold a crop of ``patch`` px; the others
    refused with the reason (checked before training, from the headers only)."""
    from ..errors import AlgnetError
    from ..images import probe_image
    from ..images.probe import truncation
    from ..images.read import upright_size

    kept, refused = [], []
    for b, s in pairs:
        try:
            hb, hs = probe_image(b), probe_image(s)
        except (AlgnetError, OSError) as e:
            refused.append((str(b), getattr(e, "reason", None) or str(e)))
            continue
        why = None
        for path, h in ((b, hb), (s, hs)):
            if why is None and h.frames > 1:
                why = f"{path} has {h.frames} pages or frames; a pair is two single images"
            if why is None and (cut := truncation(path, h.format)):
                why = f"{path}: {cut}"
        (wb, hb_), (ws, hs_) = upright_size(b, hb), upright_size(s, hs)  # as the pixels will be read: upright
        if why is not None:
            refused.append((str(b), why))
        elif (wb, hb_) != (ws, hs_):
            refused.append((str(b), f"{wb}x{hb_} upright, but its sharp partner {s} is {ws}x{hs_}"))
        elif min(wb, hb_) < patch:
            refused.append((str(b), f"{wb}x{hb_}, smaller than --patch {patch}"))
        else:
            kept.append((b, s))
    return kept, refused


class PairedFolder(torch.utils.data.Dataset):
    """Real pairs in the GoPro layout (``.../blur/x.png`` with ``.../sharp/x.png``), random crops."""

    def __init__(self, root: Path, patch: int = 128, length: int | None = None, seed: int = 0):
        from ..errors import UsageError

        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"{root}: {'not a folder' if root.exists() else 'no such folder'} of pairs")
        self.unmatched: list[str] = []
        pairs = paired_files(root, self.unmatched)
        if not pairs:
            raise UsageError(f"{root}: no blur/ and sharp/ folders with files of the same names (the GoPro layout)")
        self.pairs, self.refused = check_pairs(pairs, patch)
        if not self.pairs:
            first = "; ".join(f"{p}: {why}" for p, why in self.refused[:3])
            raise UsageError(f"{root}: none of the {len(pairs)} pairs can be used ({first})")
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
