"""Decoding images by what they are: every pixel property read into one description.

A file is decoded only by the decoder of the format its bytes were identified as: OpenCV for PNG,
JPEG, WebP and BMP pixels; tifffile for TIFF, its layout taken from the page's tags
(photometric, planar configuration, extra samples, sample format, bits, colour map), never from
the array's shape; Pillow for GIF, animations, EXIF orientation and metadata. Pixels come back
upright as H x W (grey) or H x W x C (C in 2..4), uint8, uint16 or float32; the description
(:class:`~.describe.ImageDescription`) keeps what writing needs to give the file back as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .describe import ImageDescription, Tail
from .identify import JpegInfo, format_name, jpeg_info, suffix_matches, webp_lossless
from .orient import apply_orientation
from .probe import ImageHeader, check_header, pillow_limit, probe_image
from .tiff import read_tiff


@dataclass
class Opened:
    """An image file as decoded: every frame (pages of a TIFF, frames of an animation), upright;
    the file's description (one per frame for TIFF pages), and notes on what reading changed."""

    frames: list[np.ndarray]
    description: ImageDescription
    notes: list[str] = field(default_factory=list)
    frame_descriptions: list[ImageDescription] | None = None

    @property
    def pixels(self) -> np.ndarray:
        return self.frames[0]

    def description_of(self, i: int) -> ImageDescription:
        return self.frame_descriptions[i] if self.frame_descriptions else self.description


def open_image(path: str | Path, *, max_pixels: int | None = None, orient: bool = True) -> Opened:
    """Decode an image file (all its frames) with its description.

    Raises ImageReadError, naming the file and the reason, for missing, empty, damaged,
    non-regular and over-limit files, for formats we do not read, and for sample formats the
    model cannot take exactly. ``max_pixels``: the decoding limit over all frames (None:
    :func:`~.probe.default_max_pixels`, 0: none).
    """
    path = Path(path)
    header = probe_image(path)
    check_header(path, header, max_pixels, frames=True)
    notes: list[str] = []
    if not suffix_matches(path, header.format) and path.suffix:
        notes.append(f"the file is a {format_name(header.format)} named {path.suffix}; read as what it is")
    pixels = header.width * header.height * header.frames
    if header.format == "tiff":  # each page turned upright by its own Orientation tag (see .tiff)
        frames, descs = read_tiff(path, notes, orient=orient)
        opened = Opened(frames, descs[0], notes, descs if len(descs) > 1 else None)
    else:
        if header.format == "gif" or header.frames > 1:
            opened = _read_animation(path, header, notes, pixels)
            orientation = 1
        else:
            opened = _read_single(path, header, notes)
            orientation = _orientation(path, header.format, pixels) if orient else 1
        if orientation != 1:
            opened.frames = [apply_orientation(f, orientation) for f in opened.frames]
            opened.description = opened.description.with_(orientation=orientation)
    for i, f in enumerate(opened.frames):
        if f.dtype.kind == "f" and not np.isfinite(f).all():
            bad = int(np.count_nonzero(~np.isfinite(f)))
            where = f" (page {i + 1})" if len(opened.frames) > 1 else ""
            raise ImageReadError(path, f"the file holds {bad} NaN or infinite samples{where}, which are not pixel "
                                       "values: replace them with numbers first")  # fmt: skip
    for f in opened.frames[:1]:
        if f.dtype == np.float32:
            lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
            if lo < 0.0 or hi > 1.0:
                notes.append(f"float values span {lo:.3g} to {hi:.3g}; they are clipped to [0, 1]")
    return opened


def read_image(
    path: str | Path, *, orient: bool = True, max_pixels: int | None = None, notes: list[str] | None = None
) -> np.ndarray:
    """Decode a single-image file into an upright array (see :func:`open_image`); a multi-page or
    animated file is refused (:func:`open_image` reads every frame)."""
    path = Path(path)
    check_header(path, probe_image(path), max_pixels)
    opened = open_image(path, max_pixels=max_pixels, orient=orient)
    if notes is not None:
        notes.extend(opened.notes)
    return opened.pixels


def upright_size(path: Path, header: ImageHeader) -> tuple[int, int]:
    """(width, height) of an image as it will be written: turned by its orientation (EXIF, or a
    TIFF's first page's tag), read from the header only."""
    if header.format == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tf:
                tag = tf.pages[0].tags.get(274)
                orientation = int(tag.value) if tag is not None else 1
        except Exception:  # noqa: BLE001 - the probe has read this header already
            orientation = 1
    elif header.format in ("gif",) or header.frames > 1:
        orientation = 1
    else:
        orientation = _orientation(path, header.format, header.width * header.height)
    w, h = header.width, header.height
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _orientation(path: Path, fmt: str, pixels: int) -> int:
    try:
        from PIL import Image

        with pillow_limit(pixels), Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no EXIF, or EXIF Pillow cannot parse: upright
        return 1


# -- PNG, JPEG, WebP, BMP: one image, decoded by OpenCV ---------------------------------------


def _read_single(path: Path, header: ImageHeader, notes: list[str]) -> Opened:
    raw, tail, info = _image_bytes(path, header.format)
    data = np.frombuffer(raw, dtype=np.uint8)
    desc = ImageDescription(format=header.format, metadata=read_metadata(path, header, raw, info))
    if header.format == "jpeg":
        desc = _jpeg_description(path, info, tail, desc, notes)
    elif header.format == "png":
        desc = _png_description(path, raw, desc)
    elif header.format == "webp":
        desc = desc.with_(lossless=webp_lossless(raw))
    elif header.format == "bmp":
        rle = {1: "RLE8", 2: "RLE4"}.get(int.from_bytes(raw[30:34], "little"))
        desc = desc.with_(
            palette=_pillow_palette(path, header), bits=int.from_bytes(raw[28:30], "little"), compression=rle
        )
    img = _decode_bmp(path, header, raw) if header.format == "bmp" else _decode_cv2(path, data, header.format)
    key = desc.metadata.get("png_trns")  # a grey PNG's transparent level, from its tRNS chunk
    if header.format == "png" and raw[25] == 0 and key is not None:
        img = np.stack([img, np.where(img == key, 0, np.iinfo(img.dtype).max).astype(img.dtype)], axis=-1)
        desc = desc.with_(alpha_key=key)  # grey with a transparent grey level (tRNS): an alpha made from it
    if header.grey_alpha and img.ndim == 3 and img.shape[2] == 4:
        img = np.ascontiguousarray(img[..., [0, 3]])  # grey + alpha, as stored
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    channels = 1 if img.ndim == 2 else img.shape[2]
    if desc.stored not in ("palette", "cmyk", "ycck"):
        desc = desc.with_(stored="grey" if channels <= 2 else "rgb")
    desc = desc.with_(alpha="unassociated" if channels in (2, 4) else None, dtype=img.dtype.str)
    if img.dtype == np.uint16 and desc.bits == 8:
        desc = desc.with_(bits=16)
    return Opened([img], desc, notes)


def _image_bytes(path: Path, fmt: str) -> tuple[bytes, Tail | None, JpegInfo | None]:
    """The bytes of the image; for a JPEG, those up to its end-of-image marker, where the bytes
    after it lie (read only when they are copied: a tail may be far larger than the image), and
    its markers, walked once."""
    import mmap

    if fmt != "jpeg":
        return path.read_bytes(), None, None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        info = jpeg_info(mm)
        if info is None or info.end is None or info.end >= len(mm):
            return mm[:], None, info
        end, size = info.end, len(mm) - info.end
        if all(not mm[i : i + (1 << 24)].strip(b"\x00") for i in range(end, len(mm), 1 << 24)):
            return mm[:end], None, info  # zero padding, not data
        mpo = any(m == 0xE2 and mm[a + 4 : a + 8] == b"MPF\x00" for m, a, _ in info.segments)
        return mm[:end], Tail(str(path), end, size, "mpo" if mpo else "data"), info


def _decode_bmp(path: Path, header: ImageHeader, raw: bytes) -> np.ndarray:
    """A BMP's pixels: 16-bit ones by their bit masks, scaled by bit replication (white stays 255,
    as Windows shows them; Pillow, OpenCV and imagecodecs each scale otherwise); the others by
    Pillow, which keeps the alpha of a BMP whose header has an alpha mask."""
    from PIL import Image

    if int.from_bytes(raw[28:30], "little") == 16 and int.from_bytes(raw[30:34], "little") in (0, 3):
        try:
            return _bmp16(raw, header)
        except (ValueError, IndexError) as e:
            raise ImageReadError(path, f"damaged 16-bit BMP ({e})") from None
    try:
        with pillow_limit(header.width * header.height), Image.open(path, formats=["BMP"]) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            elif im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return np.array(im)
    except Exception as e:  # noqa: BLE001 - Pillow reports damage with many types
        raise ImageReadError(path, f"damaged BMP ({type(e).__name__}: {e})") from None


def _bmp16(raw: bytes, header: ImageHeader) -> np.ndarray:
    """The RGB samples of a 16-bit BMP (5-5-5 without masks, or the masks of its bit fields)."""
    offset = int.from_bytes(raw[10:14], "little")
    height = int.from_bytes(raw[22:26], "little", signed=True)
    w, h = header.width, abs(height)
    masks: tuple[int, ...] = (0x7C00, 0x03E0, 0x001F)
    if int.from_bytes(raw[30:34], "little") == 3:
        masks = tuple(int.from_bytes(raw[54 + 4 * k : 58 + 4 * k], "little") for k in range(3))
    stride = (w * 2 + 3) // 4 * 4
    rows = np.frombuffer(raw, np.uint8, count=stride * h, offset=offset).reshape(h, stride)
    words = rows[:, : w * 2].copy().view("<u2").astype(np.uint32)
    if height > 0:  # bottom-up
        words = words[::-1]
    return np.stack([_replicate(words, m) for m in masks], axis=-1)


def _replicate(words: np.ndarray, mask: int) -> np.ndarray:
    """The field ``mask`` of each word, scaled to 8 bits by repeating its bit pattern."""
    if mask == 0:
        return np.zeros(words.shape, np.uint8)
    shift = (mask & -mask).bit_length() - 1
    bits = (mask >> shift).bit_length()
    v = (words & mask) >> shift
    out = np.zeros(words.shape, np.uint32)
    filled = 0
    while filled < 8:  # the pattern from the top bit down, as many times as 8 bits take
        out |= (v << (8 - bits)) >> filled if 8 - bits - filled >= 0 else v >> (filled - (8 - bits))
        filled += bits
    return np.minimum(out, 255).astype(np.uint8)


def _decode_cv2(path: Path, data: np.ndarray, fmt: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(path, f"damaged {format_name(fmt)} (the decoder could not read its pixels)")
    if img.ndim == 3:
        code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}.get(img.shape[2])
        if code is not None:
            img = cv2.cvtColor(img, code)
    return img


def _jpeg_description(
    path: Path, info: JpegInfo | None, tail: Tail | None, desc: ImageDescription, notes: list[str]
) -> ImageDescription:
    if info is None:
        raise ImageReadError(path, "damaged JPEG (no frame header in its markers)")
    if info.end is None:
        raise ImageReadError(path, "truncated JPEG (the data ends before the end-of-image marker)")
    if info.process in ("hierarchical", "arithmetic") or (info.precision != 8 and info.process != "lossless"):
        raise ImageReadError(
            path, f"{info.precision}-bit {info.process} JPEG: this sample precision or coding process is not supported"
        )
    stored = "grey" if info.components == 1 else "rgb"
    if info.components == 4:
        stored = "ycck" if info.adobe_transform == 2 else "cmyk"
        notes.append(f"{stored.upper()} JPEG converted to RGB (naive, without a colour profile)")
    if tail is not None and tail.kind == "mpo":
        notes.append(f"an MPO: {tail.size} bytes of further images (a second view, or a preview) follow the first")
    elif tail is not None:
        notes.append(f"{tail.size} bytes follow the JPEG image (a motion photo's video, or other data)")
    return desc.with_(
        stored=stored,
        bits=info.precision,
        lossless=info.process == "lossless",
        subsampling=info.subsampling,
        compression=info.process,
        trailing=tail,
    )


def _png_description(path: Path, raw: bytes, desc: ImageDescription) -> ImageDescription:
    depth, colour_type = raw[24], raw[25]
    desc = desc.with_(compression="interlaced" if raw[28] == 1 else None)
    if colour_type == 3:
        return desc.with_(stored="palette", bits=depth, palette=_pillow_palette(path, None))
    return desc.with_(bits=depth)


def _pillow_palette(path: Path, header: ImageHeader | None) -> np.ndarray | None:
    """(N, 3) or, with transparency, (N, 4) uint8 colours of a palette image; None otherwise."""
    from PIL import Image

    with pillow_limit(1 << 62), Image.open(path) as im:  # the header only: the palette is read before the pixels
        if im.mode != "P":
            return None
        pal = np.array(im.getpalette("RGB") or [], np.uint8).reshape(-1, 3)
        trns = im.info.get("transparency")
        if isinstance(trns, bytes):
            alpha = np.full(len(pal), 255, np.uint8)
            alpha[: len(trns)] = np.frombuffer(trns, np.uint8)[: len(pal)]
            return np.concatenate([pal, alpha[:, None]], axis=1)
        if isinstance(trns, int) and trns < len(pal):
            alpha = np.full(len(pal), 255, np.uint8)
            alpha[trns] = 0
            return np.concatenate([pal, alpha[:, None]], axis=1)
        return pal


# -- GIF, animated WebP and PNG: every frame, decoded by Pillow -------------------------------


def _read_animation(path: Path, header: ImageHeader, notes: list[str], pixels: int) -> Opened:
    from PIL import Image, ImageSequence

    frames, durations = [], []
    palette = None
    try:
        with pillow_limit(pixels), Image.open(path) as im:
            loop = im.info.get("loop")  # None: no loop count in the file (a GIF then plays once)
            loop = None if loop is None else int(loop)
            if im.mode == "P" and header.frames == 1:
                palette = _pillow_palette(path, header)
            for frame in ImageSequence.Iterator(im):
                frames.append(np.asarray(frame.convert("RGBA")))
                durations.append(int(frame.info.get("duration", im.info.get("duration", 100)) or 100))
    except Exception as e:  # noqa: BLE001 - Pillow reports damage with many types
        raise ImageReadError(path, f"damaged {format_name(header.format)} ({type(e).__name__}: {e})") from None
    if all(int(f[..., 3].min()) == 255 for f in frames):
        frames = [np.ascontiguousarray(f[..., :3]) for f in frames]
    alpha = "unassociated" if frames[0].ndim == 3 and frames[0].shape[2] == 4 else None
    raw = path.read_bytes()
    lossless = header.format != "webp" or webp_lossless(raw)
    desc = ImageDescription(
        format=header.format,
        stored="palette" if header.format == "gif" else "rgb",
        palette=palette,
        alpha=alpha,
        lossless=lossless,
        frames=len(frames),
        frames_kind="frames" if len(frames) > 1 else None,
        durations=tuple(durations),
        loop=loop,
        metadata=read_metadata(path, header, raw),
    )
    return Opened(frames, desc, notes)


# -- metadata ---------------------------------------------------------------------------------


def read_metadata(
    path: str | Path, header: ImageHeader | None = None, raw: bytes | None = None, jpeg: JpegInfo | None = None
) -> dict:
    """What an image carries besides its pixels (see :mod:`.metadata`): the carrier of its EXIF,
    IPTC, XMP, ICC profile and comment; its format's own blocks (JPEG segments, PNG chunks and a
    grey PNG's transparent level, WebP chunks, a GIF's comment and loop count); its resolution and
    its profile's colour space. TIFF tags are read with each page (see :mod:`.tiff`). ``raw``: the
    file's bytes and ``jpeg``: a JPEG's markers, when the caller has them already."""
    from . import metadata as md

    path = Path(path)
    meta: dict = {}
    try:
        from PIL import Image

        with pillow_limit(1 << 62), Image.open(path) as im:  # the header only
            info, fmt = im.info, im.format
            if info.get("dpi") and not (fmt == "JPEG" and info.get("jfif_unit") not in (1, 2)):
                meta["dpi"] = info["dpi"]  # a JPEG's own density, not one Pillow derives from EXIF
            if fmt == "WEBP":  # its ICCP, EXIF and XMP chunks, as they are
                meta["webp"] = {k: info[k] for k in ("icc_profile", "exif", "xmp") if info.get(k)}
            elif fmt == "GIF":
                meta["gif"] = {k: info[k] for k in ("comment", "loop") if k in info}
            meta["icc_space"] = md.icc_space(info.get("icc_profile"))
    except Exception:  # noqa: BLE001 - metadata is a courtesy: an image without readable metadata is still an image
        pass
    if raw is None:
        raw = path.read_bytes()
    if raw[:2] == b"\xff\xd8":
        info = jpeg or jpeg_info(raw)
        if info is not None:
            meta["jpeg"] = md.jpeg_segments(raw, info.segments)
    elif raw[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            meta["png"], trns = md.png_chunks(raw)
            meta["png_layout"] = raw[24:26]
            if raw[25] == 0 and trns is not None and len(trns) >= 2:  # grey: tRNS names one grey level
                meta["png_trns"] = int.from_bytes(trns[:2], "big")
        except Exception:  # noqa: BLE001 - a damaged chunk: the decoder has its say on the pixels
            pass
    carrier, kinds = md.carrier_of(raw)
    if carrier:
        meta["carrier"], meta["kinds"] = carrier, kinds
    return meta


def data_range(img: np.ndarray) -> float:
    """The nominal white level of an image array: 255, 65535, or 1.0 for floats."""
    if img.dtype == np.uint8:
        return 255.0
    if img.dtype == np.uint16:
        return 65535.0
    return 1.0
