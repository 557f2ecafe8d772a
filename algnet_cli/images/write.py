"""Encoding images atomically: format, bit depth, alpha, metadata (EXIF, ICC), multi-frame files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageWriteError
from .probe import IMAGE_SUFFIXES, MULTI_FRAME
from .read import Frames

FORMATS = {"png": ".png", "jpg": ".jpg", "tif": ".tif", "webp": ".webp", "bmp": ".bmp"}
WRITABLE = IMAGE_SUFFIXES
EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp", ".gif")
NO_ALPHA = (".jpg", ".jpeg", ".bmp")


def to_8bit(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return img


def write_image(path: str | Path, img: np.ndarray, *, quality: int = 95, meta: dict | None = None) -> None:
    """Write an RGB(A)/grey uint8/uint16 array, atomically, keeping ICC/EXIF where the format can.

    JPEG, WebP and BMP are 8-bit (16-bit data is scaled); JPEG and BMP drop alpha.
    """
    from ..fileio import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    meta = meta or {}
    if suffix in EIGHT_BIT_ONLY:
        img = to_8bit(img)
    if suffix in NO_ALPHA and img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[..., :-1] if img.shape[2] == 4 else img[..., 0]
    if suffix not in WRITABLE:
        raise ImageWriteError(
            f"{path}: cannot write {suffix or 'a file without a suffix'} images; write one of "
            f"{', '.join(WRITABLE)} (--format)"
        )
    if suffix in (".tif", ".tiff"):
        atomic_write(path, lambda p: _write_tiff(p, img, meta))
    elif img.dtype == np.uint16 and img.ndim == 3 and img.shape[2] == 2:  # 16-bit grey + alpha: PNG only
        atomic_write(path, lambda p: _write_png16_grey_alpha(p, img))
    elif img.dtype == np.uint16 or suffix == ".bmp":
        atomic_write(path, lambda p: _write_cv2(p, img))
    else:
        atomic_write(path, lambda p: _write_pillow(p, img, suffix, quality, meta))


def _write_cv2(p: Path, img: np.ndarray) -> None:
    import cv2

    if img.ndim == 3:
        code = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}.get(img.shape[2])
        img = cv2.cvtColor(img, code) if code is not None else img
    ok, buf = cv2.imencode(p.suffix, img)
    if not ok:
        raise OSError(f"{p}: could not encode")
    p.write_bytes(buf.tobytes())


def _write_png16_grey_alpha(p: Path, img: np.ndarray) -> None:
    """OpenCV writes 1, 3 or 4 channels and Pillow 8-bit grey + alpha only: libpng through imagecodecs."""
    import imagecodecs

    p.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(img)))


def _write_pillow(p: Path, img: np.ndarray, suffix: str, quality: int, meta: dict) -> None:
    from PIL import Image

    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        im = Image.fromarray(img, mode="LA")
    else:
        im = Image.fromarray(img)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}[suffix]
    kwargs = {}
    if meta.get("icc"):
        kwargs["icc_profile"] = meta["icc"]
    if meta.get("exif"):
        kwargs["exif"] = meta["exif"]
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "PNG":
        kwargs["compress_level"] = 4
    im.save(p, format=fmt, **kwargs)


def _write_tiff(p: Path, img: np.ndarray, meta: dict) -> None:
    import tifffile

    photometric = "rgb" if img.ndim == 3 and img.shape[2] >= 3 else "minisblack"
    extra = {"extrasamples": ["unassalpha"]} if img.ndim == 3 and img.shape[2] in (2, 4) else {}
    kwargs = {"iccprofile": meta["icc"]} if meta.get("icc") else {}
    tifffile.imwrite(p, img, photometric=photometric, compression="zlib", **extra, **kwargs)


def write_frames(path: str | Path, frames: list[np.ndarray], how: Frames, *, quality: int = 95) -> None:
    """Write frames as one multi-page TIFF or one animated WebP/GIF, atomically (durations and loop kept)."""
    from ..fileio import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MULTI_FRAME:
        raise ImageWriteError(
            f"{path}: {len(frames)} {how.kind} cannot go into one {suffix or 'suffix-less'} file; "
            "keep the input's format or use --format tif or webp"
        )
    if suffix in (".tif", ".tiff"):
        import tifffile

        def write(p: Path) -> None:
            with tifffile.TiffWriter(p) as tw:
                for f in frames:
                    photometric = "rgb" if f.ndim == 3 and f.shape[2] >= 3 else "minisblack"
                    extra = {"extrasamples": ["unassalpha"]} if f.ndim == 3 and f.shape[2] in (2, 4) else {}
                    tw.write(f, photometric=photometric, compression="zlib", **extra)

        atomic_write(path, write)
        return
    from PIL import Image

    images = [Image.fromarray(to_8bit(f)) for f in frames]
    durations = list(how.durations) if how.durations else [100] * len(images)
    kwargs = {"quality": quality} if suffix == ".webp" else {"disposal": 2}
    fmt = "WEBP" if suffix == ".webp" else "GIF"
    atomic_write(
        path,
        lambda p: images[0].save(
            p, format=fmt, save_all=True, append_images=images[1:], duration=durations, loop=how.loop, **kwargs
        ),
    )
