"""Reading and writing images: bit depth, channels, alpha, EXIF orientation.

Pixels are decoded by OpenCV (PNG, JPEG, WebP, BMP) or tifffile (TIFF, every common compression
through imagecodecs); Pillow reads headers and the EXIF orientation. Arrays are H x W (grey) or
H x W x C with C in 1..4, RGB(A) order, dtype uint8 or uint16 (float TIFFs come back as float32).

Before any pixel is decoded, the header is read: files that are not regular files, multi-page or
animated files, and images whose claimed size is over the decoding limit are refused with the
reason. The limit is taken from the memory available (see :func:`default_max_pixels`); this module
enforces it, so OpenCV's and Pillow's own fixed limits are lifted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageReadError, ImageWriteError
from .fileio import unreadable_reason

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 40))  # read before cv2 is first imported

#: what one decoded pixel costs on its way through a run: the decoded array (up to 4 x 16 bit),
#: the float32 input and output tensors and the output array, with room for one copy of each
BYTES_PER_DECODED_PIXEL = 64

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")


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


MULTI_FRAME = (".tif", ".tiff", ".webp", ".gif")


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


def write_frames(path: str | Path, frames: list[np.ndarray], how: Frames, *, quality: int = 95) -> None:
    """Write frames as one multi-page TIFF or one animated WebP/GIF, atomically (durations and loop kept)."""
    from .fileio import atomic_write

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
    from .fileio import atomic_write

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
