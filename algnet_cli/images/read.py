"""Decoding images: bit depth, channels, alpha, EXIF orientation, multi-frame files, metadata.

Pixels are decoded by OpenCV (PNG, JPEG, WebP, BMP) or tifffile (TIFF, every common compression
through imagecodecs); Pillow reads headers, animations and the EXIF orientation. Arrays are H x W
(grey) or H x W x C with C in 1..4, RGB(A) order, dtype uint8 or uint16 (float TIFFs come back as
float32). The header is checked (:mod:`.probe`) before any pixel is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .probe import check_header, probe_image


def _orientation(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # no EXIF, or a format Pillow does not know: upright
        return 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with an EXIF orientation (1..8) upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](img)) if orientation in ops else img


def read_image(
    path: str | Path, *, orient: bool = True, max_pixels: int | None = None, notes: list[str] | None = None
) -> np.ndarray:
    """Decode an image file into an upright RGB(A) or grey array (see the module docstring).

    Raises ImageReadError, naming the file, for missing, empty, truncated, non-regular,
    multi-page or over-limit files and for non-images. ``max_pixels``: the decoding limit (None:
    :func:`default_max_pixels`, 0: none). ``notes`` receives what was changed on the way (CMYK
    made RGB, float values outside [0, 1]).
    """
    path = Path(path)
    header = probe_image(path)
    check_header(path, header, max_pixels)
    notes = [] if notes is None else notes
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        img = _read_tiff(path, notes)
    else:
        img = _read_cv2(path)
        if header is not None and header.grey_alpha and img.ndim == 3 and img.shape[2] == 4:
            img = np.ascontiguousarray(img[..., [0, 3]])  # grey + alpha, as stored
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if orient:
        img = apply_orientation(img, _orientation(path))
    if img.dtype == np.float32:
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        if lo < 0.0 or hi > 1.0:
            notes.append(f"float values span {lo:.3g} to {hi:.3g}; they are clipped to [0, 1]")
    return img


def _read_tiff(path: Path, notes: list[str]) -> np.ndarray:
    return _read_tiff_pages(path, notes, first_only=True)[0]


def _read_tiff_pages(path: Path, notes: list[str], first_only: bool = False) -> list[np.ndarray]:
    """Full-resolution pages of a TIFF as arrays (reduced-resolution pages are thumbnails: skipped)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            pages = [p for p in tf.pages if not (int(getattr(p, "subfiletype", 0) or 0) & 1)] or [tf.pages[0]]
            raw = [
                (p.asarray(), p.photometric == tifffile.PHOTOMETRIC.SEPARATED and p.samplesperpixel >= 4)
                for p in pages[: 1 if first_only else None]
            ]
    except Exception as e:  # tifffile reports damage with many exception types
        raise ImageReadError(
            path, f"not a readable TIFF ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
        ) from None
    out = []
    for img, cmyk in raw:
        if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 3, 4):
            img = np.moveaxis(img, 0, -1)  # planar configuration
        if cmyk:
            img = _cmyk_to_rgb(img)
            if not out:
                notes.append("CMYK converted to RGB (naive, without a colour profile)")
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4):
            raise ImageReadError(path, f"unsupported TIFF layout {img.shape}")
        if img.dtype not in (np.uint8, np.uint16):
            img = img.astype(np.float32)
        out.append(img)
    return out


@dataclass(frozen=True)
class Frames:
    """How a multi-page or animated file holds its images, to write them back the same way."""

    kind: str  # "pages" (TIFF) or "frames" (animated WebP/GIF)
    durations: tuple[int, ...] = ()  # milliseconds a frame is shown
    loop: int = 0  # 0: forever


def read_frames(
    path: str | Path, *, max_pixels: int | None = None, notes: list[str] | None = None
) -> tuple[list[np.ndarray], Frames]:
    """Every page of a multi-page TIFF, or every frame of an animated WebP/GIF, and how to write them back.

    The decoding limit applies to all frames together. Frames come upright as :func:`read_image`'s
    arrays (animated frames as RGB, or RGBA when any pixel is transparent).
    """
    path = Path(path)
    notes = [] if notes is None else notes
    header = probe_image(path)
    check_header(path, header, max_pixels, frames=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff_pages(path, notes), Frames("pages")
    from PIL import Image, ImageSequence

    frames, durations = [], []
    try:
        with Image.open(path) as im:
            loop = int(im.info.get("loop", 0) or 0)
            for frame in ImageSequence.Iterator(im):
                rgba = np.asarray(frame.convert("RGBA"))
                frames.append(rgba)
                durations.append(int(frame.info.get("duration", im.info.get("duration", 100)) or 100))
    except Exception as e:  # noqa: BLE001 - Pillow reports damage with many types
        raise ImageReadError(path, f"not a readable animation ({type(e).__name__}: {e})") from None
    if all(int(f[..., 3].min()) == 255 for f in frames):
        frames = [np.ascontiguousarray(f[..., :3]) for f in frames]
    return frames, Frames("frames", tuple(durations), loop)


def _cmyk_to_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 4+) CMYK ink (0 = no ink) -> (H, W, 3) RGB: each channel (1 - ink)(1 - K), as JPEG decoders do."""
    white = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    ink = img[..., :4].astype(np.float32) / white
    rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])
    if np.issubdtype(img.dtype, np.integer):
        return np.floor(rgb * white + 0.5).astype(img.dtype)
    return rgb.astype(np.float32)


def _read_cv2(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(path, "not a readable image (unknown format, or damaged)")
    if suffix_is_jpeg(path) and not _jpeg_complete(data):
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker)")
    if img.ndim == 3:
        code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}.get(img.shape[2])
        if code is not None:
            img = cv2.cvtColor(img, code)
    return img


def suffix_is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def _jpeg_complete(data: np.ndarray) -> bool:
    tail = bytes(data[-64:].tobytes()).rstrip(b"\x00")
    return tail.endswith(b"\xff\xd9")


def data_range(img: np.ndarray) -> float:
    """The nominal white level of an image array: 255, 65535, or 1.0 for floats."""
    if img.dtype == np.uint8:
        return 255.0
    if img.dtype == np.uint16:
        return 65535.0
    return 1.0


# -- metadata and writing ---------------------------------------------------------------------


def read_metadata(path: str | Path) -> dict:
    """ICC profile and EXIF (with the orientation reset to upright) of an image, when present."""
    meta: dict = {"icc": None, "exif": None}
    try:
        from PIL import Image

        with Image.open(path) as im:
            meta["icc"] = im.info.get("icc_profile") or None
            exif = im.getexif()
            if len(exif):
                exif[0x0112] = 1  # pixels are stored upright from now on
                meta["exif"] = exif.tobytes()
    except Exception:  # metadata is a courtesy: an image without readable metadata is still an image
        pass
    return meta
