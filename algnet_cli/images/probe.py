"""Image headers, read before any pixel: what the file is (by its bytes), its size, its frames, and
the decoding limit.

Files that are not regular files, files in a format we do not read, headers that cannot be
parsed, and images whose claimed size is over the decoding limit are refused with the reason;
nothing is ever decoded blind. The limit is taken from the memory available (see
:func:`default_max_pixels`) unless the user sets it. Pillow's own limit stays in force for the
process; it is raised only around our own calls, and only to the size we checked.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageReadError
from ..fileio import unreadable_reason
from .identify import KNOWN_UNREADABLE, READABLE, format_name, identify_bytes, unreadable_header_size

#: what one decoded pixel costs on its way through a run: the decoded array (up to 4 x 16 bit),
#: the float32 input and output tensors and the output array, with room for one copy of each
BYTES_PER_DECODED_PIXEL = 64

#: OpenCV's own decoding limit (its default, left in force)
OPENCV_MAX_PIXELS = 1 << 30

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
#: suffixes of files recognised as images that algnet does not read (named, not silently ignored)
UNREADABLE_SUFFIXES = (".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".exr", ".hdr", ".pfm", ".psd", ".qoi",
                       ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw")  # fmt: skip
#: suffixes that hold several frames (multi-page TIFF, animated WebP, GIF and PNG)
MULTI_FRAME = (".tif", ".tiff", ".webp", ".gif", ".png")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def default_max_pixels() -> int:
    """The decoding limit: half the memory available now, at BYTES_PER_DECODED_PIXEL a pixel."""
    from ..cpu import available_memory

    available = available_memory()
    if available is None:
        available = 8 << 30
    return int(available * 0.5 / BYTES_PER_DECODED_PIXEL)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file claims about itself, read without decoding its pixels."""

    width: int
    height: int
    frames: int = 1  # pages of a TIFF (reduced-resolution ones not counted), frames of a WebP/GIF/APNG
    grey_alpha: bool = False  # a PNG of grey + alpha (OpenCV decodes those as RGBA)
    format: str = "png"  # identified by the bytes, never by the name


_PILLOW_LOCK = threading.RLock()


@contextmanager
def pillow_limit(pixels: int):
    """Pillow's decompression-bomb limit raised to ``pixels`` for the calls inside, then restored."""
    from PIL import Image

    with _PILLOW_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        if before is not None:
            Image.MAX_IMAGE_PIXELS = max(int(before), int(pixels) + 1)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def probe_image(path: str | Path) -> ImageHeader:
    """The header of an image file, its format identified by its first bytes.

    Raises ImageReadError for paths that are not readable regular files, empty files, formats we
    do not read (named, with the size their header claims where it can be read), and headers
    that cannot be parsed.
    """
    path = Path(path)
    reason = unreadable_reason(path)
    if reason is not None:
        raise ImageReadError(path, reason)
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")
    with open(path, "rb") as f:
        head = f.read(64)
    fmt = identify_bytes(head)
    if fmt is None:
        raise ImageReadError(path, "not an image in a format algnet reads (unrecognised content)")
    if fmt in KNOWN_UNREADABLE:
        size = unreadable_header_size(path, fmt)
        claim = f" claiming {size[0]}x{size[1]} pixels" if size else ""
        raise ImageReadError(
            path, f"a {format_name(fmt)} image{claim}; algnet reads {', '.join(f.upper() for f in READABLE)}"
        )
    try:
        if fmt == "tiff":
            return _probe_tiff(path)
        if fmt == "jpeg":
            return _probe_jpeg(path)
        return _probe_pillow(path, fmt)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - a header we cannot parse is refused, never decoded blind
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ImageReadError(path, f"damaged {format_name(fmt)} header ({detail})") from None


def _probe_tiff(path: Path) -> ImageHeader:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        if 50706 in page.tags:  # DNGVersion
            raise ImageReadError(path, "a DNG raw file (camera sensor data, with a small preview); algnet deblurs "
                                       "developed images: develop it to TIFF or JPEG first")  # fmt: skip
        frames = sum(1 for p in tf.pages if not (int(getattr(p, "subfiletype", 0) or 0) & 1))
        return ImageHeader(int(page.imagewidth), int(page.imagelength), max(1, frames), format="tiff")


def _probe_jpeg(path: Path) -> ImageHeader:
    """A JPEG's header from its markers: Pillow does not open every JPEG that we read (lossless ones)."""
    import mmap

    from .identify import jpeg_info

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        info = jpeg_info(mm)  # the markers only: a long tail after the image is never read
    if info is None or not info.width or not info.height:
        raise ValueError("no frame header in its markers")
    if info.process in ("hierarchical", "arithmetic") or (info.precision != 8 and info.process != "lossless"):
        raise ImageReadError(
            path, f"{info.precision}-bit {info.process} JPEG: this sample precision or coding process is not supported"
        )
    return ImageHeader(info.width, info.height, 1, format="jpeg")


_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF"}


def _probe_pillow(path: Path, fmt: str) -> ImageHeader:
    from PIL import Image

    with pillow_limit(1 << 62), Image.open(path, formats=[_PILLOW_FORMATS[fmt]]) as im:
        w, h = im.size  # only the header is read here; the size is checked against our limit next
        frames = int(getattr(im, "n_frames", 1) or 1)
    with open(path, "rb") as f:
        head = f.read(26)
    grey_alpha = fmt == "png" and len(head) == 26 and head[25] == 4  # IHDR colour type
    return ImageHeader(w, h, frames, grey_alpha, fmt)


def truncation(path: Path, fmt: str) -> str | None:
    """Why a file ends before its image does, from its structure (no pixel decoded): a JPEG without
    its end-of-image marker, a PNG without its IEND chunk; None when complete (or not checkable)."""
    import mmap

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if fmt == "jpeg":
                from .identify import jpeg_info

                info = jpeg_info(mm)
                return (
                    "truncated JPEG (the data ends before the end-of-image marker)"
                    if info and info.end is None
                    else None
                )
            if fmt == "png":
                return (
                    None if mm.rfind(b"IEND", max(0, len(mm) - 64)) >= 0 else "truncated PNG (no IEND chunk at its end)"
                )
    except (OSError, ValueError):
        return None
    return None


def megapixels(pixels: int) -> str:
    """A pixel count in megapixels, with the digits that tell small counts apart (never "0 MP")."""
    mp = pixels / 1e6
    if mp >= 100:
        return f"{mp:.0f} MP"
    return f"{mp:.3g} MP" if mp >= 0.001 else f"{pixels} pixels"


def check_header(
    path: Path, header: ImageHeader | None, max_pixels: int | None = None, *, frames: bool = False
) -> None:
    """Refuse, before decoding, images over the decoding limit (0: no limit), counting every frame;
    and, unless ``frames`` (the caller reads them all), multi-page or animated files."""
    if header is None:
        return
    if header.frames > 1 and not frames:
        kind = "pages" if header.format == "tiff" else "frames"
        raise ImageReadError(path, f"has {header.frames} {kind}; read_image reads one image (open_image reads all)")
    limit = default_max_pixels() if max_pixels is None else max_pixels
    pixels = header.width * header.height * header.frames
    if limit and pixels > limit:
        count = f" in {header.frames} frames" if header.frames > 1 else ""
        source = "half the memory available" if max_pixels is None else "set by --max-megapixels"
        raise ImageReadError(
            path,
            f"claims {header.width}x{header.height} pixels{count} ({megapixels(pixels)}), over the decoding limit of "
            f"{megapixels(limit)} ({source}); raise it with --max-megapixels",
        )
    if header.format in ("png", "jpeg", "webp", "bmp") and header.width * header.height > OPENCV_MAX_PIXELS:
        if header.frames == 1:
            raise ImageReadError(
                path,
                f"claims {header.width}x{header.height} pixels, over the decoder's limit of {OPENCV_MAX_PIXELS} pixels",
            )
