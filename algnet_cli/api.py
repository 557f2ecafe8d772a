"""The Python API for whole images: arrays in, arrays out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .runner import Runner, RunOptions


def array_to_tensor(img: np.ndarray) -> tuple[torch.Tensor, np.ndarray | None, float, bool]:
    """(H, W[, C]) uint8/uint16/float -> ((1, 3, H, W) float32 in [0, 1], alpha or None, white level, grey?)."""
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        scale = 1.0
    else:
        raise TypeError(f"unsupported image dtype {img.dtype}; use uint8, uint16 or float")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected H x W or H x W x C (C in 1..4), got shape {img.shape}")
    alpha = None
    if img.shape[2] in (2, 4):
        img, alpha = img[..., :-1], img[..., -1]
    grey = img.shape[2] == 1
    rgb = np.repeat(img, 3, axis=2) if grey else img
    x = torch.from_numpy(np.ascontiguousarray(rgb).astype(np.float32) / scale).permute(2, 0, 1)[None]
    return x, alpha, scale, grey


def tensor_to_array(y: torch.Tensor, alpha: np.ndarray | None, scale: float, grey: bool, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`array_to_tensor` for a (1, 3, H, W) result; clamps to [0, 1] and rounds."""
    out = y[0].clamp(0, 1).permute(1, 2, 0).numpy()
    if grey:
        out = out.mean(axis=2, keepdims=True)
    if np.issubdtype(dtype, np.integer):
        out = np.floor(out * scale + 0.5).astype(dtype)
    else:
        out = out.astype(dtype)
    if alpha is not None:
        out = np.concatenate([out, alpha[..., None].astype(out.dtype)], axis=2)
    return out[..., 0] if out.shape[2] == 1 else out


class Deblurrer:
    """Deblur images with an ALGNet.

    >>> d = Deblurrer("model.safetensors", device="cpu")          # doctest: +SKIP
    >>> sharp = d.deblur(blurry)      # uint8/uint16/float, H x W or H x W x C; same dtype and shape

    Alpha channels pass through untouched; grey stays grey.
    """

    def __init__(
        self,
        model="default",
        *,
        device: str = "auto",
        precision: str = "auto",
        tlc: bool | int = True,
        scan: str = "auto",
        tile: int | None = None,
        tile_overlap: int = 32,
        max_memory_gb: float | None = None,
        cache_dir: str | Path | None = None,
        offline: bool | None = None,
    ):
        from . import load_model
        from .runner import pick_device

        options = RunOptions(device, precision, tile=tile, tile_overlap=tile_overlap, max_memory_gb=max_memory_gb)
        if isinstance(model, torch.nn.Module):
            self.model = model
        else:  # the scan backend is checked against the device the model will run on, chosen once here
            target = pick_device(device)
            self.model = load_model(model, device=target, tlc=tlc, scan=scan, cache_dir=cache_dir, offline=offline)
            options = RunOptions(
                str(target), precision, tile=tile, tile_overlap=tile_overlap, max_memory_gb=max_memory_gb
            )
        self.runner = Runner(self.model, options)

    def deblur(self, img: np.ndarray) -> np.ndarray:
        x, alpha, scale, grey = array_to_tensor(img)
        return tensor_to_array(self.runner.restore(x), alpha, scale, grey, img.dtype)

    def deblur_many(self, imgs: list[np.ndarray]) -> list[np.ndarray]:
        """Deblur same-size images in one batch (video frames on a GPU); same results as :meth:`deblur`."""
        if len(imgs) == 1:
            return [self.deblur(imgs[0])]
        parts = [array_to_tensor(img) for img in imgs]
        y = self.runner.restore(torch.cat([p[0] for p in parts]))
        return [
            tensor_to_array(y[i : i + 1], alpha, scale, grey, img.dtype)
            for i, (img, (_, alpha, scale, grey)) in enumerate(zip(imgs, parts))
        ]

    def frames_per_batch(self, height: int, width: int, limit: int = 8) -> int:
        """How many frames of this size to run at once: 1 on the CPU or when tiling; on a GPU as many
        as the memory budget holds, up to ``limit``."""
        return self.runner.batch_size(height, width, limit)

    def deblur_file(self, src: str | Path, dst: str | Path, *, quality: int = 95) -> None:
        from .images import read_image, read_metadata, write_image

        img = read_image(src)
        write_image(dst, self.deblur(img), quality=quality, meta=read_metadata(src))
