"""Image headers, read before any pixel: size, frames, and the decoding limit.

Files that are not regular files, and images whose claimed size is over the decoding limit, are
refused with the reason. The limit is taken from the memory available (see
:func:`default_max_pixels`); this package enforces it, so OpenCV's and Pillow's own fixed limits
are lifted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageReadError
from ..fileio import unreadable_reason

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 40))  # read before cv2 is first imported

#: what one decoded pixel costs on its way through a run: the decoded array (up to 4 x 16 bit),
#: the float32 input and output tensors and the output array, with room for one copy of each
BYTES_PER_DECODED_PIXEL = 64

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
#: suffixes that hold several frames (multi-page TIFF, animated WebP and GIF)
MULTI_FRAME = (".tif", ".tiff", ".webp", ".gif")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def default_max_pixels() -> int:
    """The decoding limit: half the memory available now, at BYTES_PER_DECODED_PIXEL a pixel."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 << 30
    return int(available * 0.5 / BYTES_PER_DECODED_PIXEL)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file claims about itself, read without decoding its pixels."""

    width: int
    height: int
    frames: int = 1  # pages of a TIFF (reduced-resolution ones not counted), frames of a WebP/GIF
    grey_alpha: bool = False  # a PNG of grey + alpha (OpenCV decodes those as RGBA)


def probe_image(path: str | Path) -> ImageHeader | None:
    """The header of an image file; None when no header can be parsed (the decoder then says why).

    Raises ImageReadError for paths that are not readable regular files, and for empty files.
    """
    path = Path(path)
    reason = unreadable_reason(path)
    if reason is not None:
        raise ImageReadError(path, reason)
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _probe_tiff(path)
        return _probe_pillow(path)
    except Exception:  # noqa: BLE001 - an unparsable header is the decoder's to report
        return None


def _probe_tiff(path: Path) -> ImageHeader:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        frames = sum(1 for p in tf.pages if not (int(getattr(p, "subfiletype", 0) or 0) & 1))
        return ImageHeader(int(page.imagewidth), int(page.imagelength), max(1, frames))


def _probe_pillow(path: Path) -> ImageHeader:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the size is checked here, against the memory available
    with Image.open(path) as im:
        w, h = im.size
        frames = int(getattr(im, "n_frames", 1) or 1)
    with open(path, "rb") as f:
        head = f.read(26)
    grey_alpha = head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[25] == 4  # IHDR colour type
    return ImageHeader(w, h, frames, grey_alpha)


def check_header(
    path: Path, header: ImageHeader | None, max_pixels: int | None = None, *, frames: bool = False
) -> None:
    """Refuse, before decoding, images over the decoding limit (0: no limit), counting every frame;
    and, unless ``frames`` (the caller reads them all), multi-page or animated files."""
    if header is None:
        return
    if header.frames > 1 and not frames:
        kind = "pages" if path.suffix.lower() in (".tif", ".tiff") else "frames"
        raise ImageReadError(path, f"has {header.frames} {kind}; read_image reads one image (read_frames reads all)")
    limit = default_max_pixels() if max_pixels is None else max_pixels
    pixels = header.width * header.height * header.frames
    if limit and pixels > limit:
        count = f" in {header.frames} frames" if header.frames > 1 else ""
        raise ImageReadError(
            path,
            f"claims {header.width}x{header.height} pixels{count} ({pixels / 1e6:.0f} MP), over the decoding limit of "
            f"{limit / 1e6:.0f} MP (half the memory available); raise it with --max-megapixels",
        )
