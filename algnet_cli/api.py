"""The Python API for whole images: arrays in, arrays out."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .runner import Runner, RunOptions, RunReport, pick_device

_log = logging.getLogger("algnet_cli.api")

#: a float image reaching over this is not a 0..1 image (values over 1.0 up to it are clipped, as a
#: float TIFF's are)
FLOAT_WHITE_LIMIT = 2.0


def check_array(img: np.ndarray) -> None:
    """What the public API refuses, with the reason: a channels-first array, a float image that is
    not 0..1, NaN or infinite values. (Files are checked by their reader.)"""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[2] in (3, 4) and img.shape[1] >= 16:
        raise ValueError(
            f"an image of shape {img.shape} looks channels-first (C x H x W): pass H x W x C "
            "(numpy: img.transpose(1, 2, 0))"
        )
    if np.issubdtype(img.dtype, np.floating):
        finite = np.isfinite(img)
        if not finite.all():
            raise ValueError(f"the image holds {int(img.size - np.count_nonzero(finite))} NaN or infinite values: "
                             "they are not pixel values")  # fmt: skip
        top = float(img.max(initial=0.0))
        if top > FLOAT_WHITE_LIMIT:
            raise ValueError(
                f"a float image is read as 0..1 (1.0 is white), and this one reaches {top:.4g}: "
                "scale it to 0..1 (for 0..255 values: img / 255), or pass uint8 or uint16"
            )


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
    if grey:  # float outputs in float64, so that three equal float32 channels give that value back exactly
        out = out.mean(axis=2, keepdims=True, dtype=np.float64 if not np.issubdtype(dtype, np.integer) else None)
    if np.issubdtype(dtype, np.integer):
        out = np.floor(out * scale + 0.5).astype(dtype)
    else:
        out = out.astype(dtype)
    if alpha is not None:
        out = np.concatenate([out, alpha[..., None].astype(out.dtype)], axis=2)
    return out[..., 0] if out.shape[2] == 1 else out


def _check_options(*, tlc, tile, tile_overlap, max_memory_gb, strength) -> None:
    """The constructor's numbers, checked before anything loads: a ValueError naming the argument."""
    import math
    from numbers import Integral, Real

    def whole(v) -> bool:
        return isinstance(v, Integral) and not isinstance(v, bool)

    if not isinstance(tlc, bool) and not (whole(tlc) and tlc >= 32):
        raise ValueError(f"tlc must be True, False or a training crop side of 32 px or more, not {tlc!r}")
    if tile is not None and (not whole(tile) or tile < 0 or 0 < tile < 32):
        raise ValueError(f"tile must be None (auto), 0 (whole image) or a side of 32 px or more, not {tile!r}")
    if not whole(tile_overlap) or tile_overlap < 0:
        raise ValueError(f"tile_overlap must be a number of pixels, 0 or more, not {tile_overlap!r}")
    if max_memory_gb is not None and not (isinstance(max_memory_gb, Real) and math.isfinite(float(max_memory_gb))
                                          and float(max_memory_gb) > 0):  # fmt: skip
        raise ValueError(f"max_memory_gb must be a number of GiB over 0, not {max_memory_gb!r}")
    if not (isinstance(strength, Real) and 0.0 <= float(strength) <= 1.0):  # NaN fails this too
        raise ValueError(f"strength must be between 0 and 1, not {strength!r}")


class Deblurrer:
    """Deblur images with an ALGNet. The device is chosen once, here; the model is loaded for it.

    >>> d = Deblurrer("model.safetensors", device="cpu")          # doctest: +SKIP
    >>> sharp = d.deblur(blurry)      # uint8/uint16/float, H x W or H x W x C; same dtype and shape

    Alpha channels pass through untouched; grey stays grey. ``strength`` (0 to 1) blends the result
    with the input, per pixel: input + strength x (restored - input). ``model`` is anything
    :func:`~algnet_cli.load_model` takes (a registry name, hf:// reference or checkpoint path,
    resolved with ``cache_dir``/``offline``), or an ALGNet module already built.
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
        strength: float = 1.0,
        cache_dir: str | Path | None = None,
        offline: bool | None = None,
        quiet: bool = False,
    ):
        from .model import ALGNet
        from .model.load import describe, load

        _check_options(tlc=tlc, tile=tile, tile_overlap=tile_overlap, max_memory_gb=max_memory_gb, strength=strength)
        target = pick_device(device)
        if isinstance(model, torch.nn.Module):
            if not isinstance(model, ALGNet):
                raise TypeError(f"model: an ALGNet, a registry name, an hf:// reference or a checkpoint path, "
                                f"not a {type(model).__name__}")  # fmt: skip
            self.model, self.descriptor = model, describe(model, target)
        else:  # the scan backend is checked against the device the model will run on
            self.model, self.descriptor = load(
                model, device=target, tlc=tlc, scan=scan, cache_dir=cache_dir, offline=offline, quiet=quiet
            )
        options = RunOptions(
            str(target), precision, tile=tile, tile_overlap=tile_overlap, max_memory_gb=max_memory_gb, strength=strength
        )
        self.runner = Runner(self.model, options)
        d = self.descriptor
        _log.info(
            "model %s (%s; sha256 %s), scan backend %s on %s, precision %s, tiles %s",
            d.source, d.config.describe(), (d.sha256 or "none")[:12], d.scan_backend, self.runner.device,
            self.runner.precision_name, "auto" if tile is None else tile or "none",
        )  # fmt: skip

    def run(self, imgs: list[np.ndarray]) -> tuple[list[np.ndarray], RunReport]:
        """Deblur same-size images in one batch; the results and the runner's report of what it did."""
        parts = [array_to_tensor(img) for img in imgs]
        x = parts[0][0] if len(parts) == 1 else torch.cat([p[0] for p in parts])
        y, report = self.runner.run(x)
        outs = [
            tensor_to_array(y[i : i + 1], alpha, scale, grey, img.dtype).reshape(img.shape)  # H x W x 1 stays so
            for i, (img, (_, alpha, scale, grey)) in enumerate(zip(imgs, parts))
        ]
        return outs, report

    def deblur(self, img: np.ndarray) -> np.ndarray:
        """Deblur one image: uint8, uint16 or float in 0..1, H x W or H x W x C; the same dtype and shape back."""
        check_array(img)
        return self.run([img])[0][0]

    def deblur_many(self, imgs: list[np.ndarray]) -> list[np.ndarray]:
        """Deblur same-size images in one batch (video frames on a GPU); same results as :meth:`deblur`."""
        for img in imgs:
            check_array(img)
        return self.run(imgs)[0]

    def frames_per_batch(self, height: int, width: int, limit: int = 8) -> int:
        """How many frames of this size to run at once: 1 on the CPU or when tiling; on a GPU as many
        as the memory budget holds, up to ``limit``."""
        return self.runner.batch_size(height, width, limit)

    def describe_run(self) -> dict:
        """The model as loaded and the runner's settings and totals, for a run record."""
        o, totals = self.runner.options, self.runner.totals
        return {
            "model": self.descriptor.to_dict(),
            "device": str(self.runner.device),
            "precision": self.runner.precision_name,
            "scan_backend": self.descriptor.scan_backend,
            "tiling": {"tile": "auto" if o.tile is None else o.tile, "overlap": o.tile_overlap},
            "strength": o.strength,
            **({"oom_splits": totals.oom_splits} if totals.oom_splits else {}),
            "fp32_fallbacks": totals.fp32_fallbacks,
            "versions": {"torch": torch.__version__},
        }

    def deblur_file(self, src: str | Path, dst: str | Path, *, quality: int = 95, overwrite: bool = False) -> list[str]:
        """Deblur one image file into ``dst`` exactly as ``algnet deblur`` does (every page or frame,
        the input's description honoured); the notes on what the output could not hold.

        As on the command line, ``dst`` may never be ``src`` (nor a link to it), and an existing
        ``dst`` is replaced only with ``overwrite=True``: a UsageError (also a ValueError) otherwise.
        """
        from .batch.plan import Job
        from .batch.stills import load_image, save_image
        from .errors import UsageError
        from .outputs import OutputGuard

        guard = OutputGuard(overwrite=overwrite)
        guard.add_input(src)
        guard.claim_file(dst, "dst", existing="keep")
        if not overwrite and Path(dst).exists():
            raise UsageError(f"dst {dst}: exists; pass overwrite=True to replace it")
        job = Job(Path(src), Path(dst))
        decoded = load_image(job)
        outs = [self.deblur(frame) for frame in decoded.opened.frames]
        return decoded.notes + save_image(job, outs if len(outs) > 1 else outs[0], decoded, quality)
