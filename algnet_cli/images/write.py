"""Encoding images atomically, as their description says: format, bit depth, sample format,
palette, alpha, layout, coding (lossless stays lossless) and metadata (ICC, EXIF, XMP, resolution,
text, TIFF tags). Whatever the output cannot hold is returned as a note naming what changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageWriteError
from .describe import ImageDescription, describe_array
from .identify import SUFFIXES
from .metadata import carry, profile_fits, profile_note, splice_png
from .probe import IMAGE_SUFFIXES
from .tiff import palette_indices, write_tiff

FORMATS = {"png": ".png", "jpg": ".jpg", "tif": ".tif", "webp": ".webp", "bmp": ".bmp"}
WRITABLE = IMAGE_SUFFIXES
EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp", ".gif")
NO_ALPHA = (".jpg", ".jpeg")
_FORMAT_OF_SUFFIX = {s: f for f, suffixes in SUFFIXES.items() for s in suffixes}


def format_of_suffix(path: Path) -> str | None:
    return _FORMAT_OF_SUFFIX.get(path.suffix.lower())


def to_8bit(img: np.ndarray) -> np.ndarray:
    """The one conversion to 8 bits: uint16 and float in [0, 1] to uint8, rounded to nearest."""
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.dtype.kind == "f":
        return np.floor(np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return img


def _to_16bit(img: np.ndarray) -> np.ndarray:
    if img.dtype.kind == "f":
        return np.floor(np.clip(np.nan_to_num(img), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    return img


def save_image(
    path: str | Path,
    frames: list[np.ndarray],
    description: ImageDescription,
    *,
    quality: int = 95,
    fmt: str | None = None,
    frame_descriptions: list[ImageDescription] | None = None,
) -> list[str]:
    """Write ``frames`` (one image, or every page/frame of a multi-frame input) atomically, as
    ``description`` says, in format ``fmt`` (None: the description's own format, whatever the
    name's suffix). Returns notes on whatever the output could not hold."""
    from ..fileio import atomic_write

    path = Path(path)
    target = fmt or description.format
    if target not in SUFFIXES:
        raise ImageWriteError(f"{path}: cannot write {path.suffix or 'a file without a suffix'} images; write one of "
                              f"{', '.join(WRITABLE)} (--format)")  # fmt: skip
    notes: list[str] = []
    holds = ("tiff",) if description.frames_kind == "pages" else ("tiff", "webp", "gif", "png")
    if len(frames) > 1 and target not in holds:
        kind = description.frames_kind or "frames"
        raise ImageWriteError(f"{path}: {len(frames)} {kind} cannot go into one {path.suffix or target} file; "
                              "keep the input's format or use --format tif")  # fmt: skip
    same = target == description.format
    meta = description.metadata or {}
    if target == "tiff":
        descs = frame_descriptions or [description] * len(frames)
        if not same:
            descs = [_plain(f, "tiff", description) for f in frames]
        encode = lambda p: (write_tiff(p, frames, descs, notes), same)
    elif len(frames) > 1:
        images = _pillow_frames(frames, target, notes)
        encode = lambda p: _save_animation(p, images, target, description, quality, same, notes)
    else:
        writer = {"png": _png, "jpeg": _jpeg, "webp": _webp, "bmp": _bmp, "gif": _gif}[target]
        desc = description if same else _plain(frames[0], target, description)
        encode = lambda p: writer(p, frames[0], desc, quality, notes)
    first = frames[0]
    size = (first.shape[1], first.shape[0])

    def write(p: Path) -> None:
        colour, copied = encode(p)  # copied: the input's own blocks went in as they were
        carry(p, target, meta, copied=copied, orientation=description.orientation, size=size,
              colour=colour, pages=len(frames), notes=notes)  # fmt: skip

    atomic_write(path, write)
    if not same and description.format == "jpeg" and description.trailing:
        notes.append(
            f"the {len(description.trailing)} bytes after the JPEG image are not copied into a {target.upper()}"
        )
    return list(dict.fromkeys(notes))


def write_image(path: str | Path, img: np.ndarray, *, quality: int = 95, meta: dict | None = None) -> list[str]:
    """Write one RGB(A)/grey array atomically in the format its name says, keeping ``meta``
    (ICC, EXIF, ...) where the format can; returns notes on what the format could not hold."""
    path = Path(path)
    fmt = format_of_suffix(path)
    if fmt is None:
        raise ImageWriteError(f"{path}: cannot write {path.suffix or 'a file without a suffix'} images; write one of "
                              f"{', '.join(WRITABLE)} (--format)")  # fmt: skip
    desc = describe_array(img, fmt).with_(metadata=dict(meta or {}))
    return save_image(path, [img], desc, quality=quality)


def _plain(img: np.ndarray, fmt: str, source: ImageDescription) -> ImageDescription:
    """How to write an array into another format than its input's: its own channels and depth,
    the input's metadata (of which :func:`.metadata.carry` copies what the format holds)."""
    own = ("jpeg", "png", "png_layout", "webp", "gif", "tiff_tags", "tile", "predictor")  # the input format's own
    meta = {k: v for k, v in (source.metadata or {}).items() if k not in own}
    return describe_array(img, fmt).with_(metadata=meta, orientation=source.orientation)


def _eight_bit(img: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    if img.dtype != np.uint8:
        kind = "float" if img.dtype.kind == "f" else f"{img.dtype.itemsize * 8}-bit"
        notes.append(f"{kind} samples written as 8-bit ({name} holds 8 bits)")
    return to_8bit(img)


def _drop_alpha(img: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] in (2, 4):
        notes.append(f"alpha channel dropped ({name} has none)")
        return img[..., :-1] if img.shape[2] == 4 else img[..., 0]
    return img


def _pillow_image(img: np.ndarray):
    from PIL import Image

    if img.ndim == 3 and img.shape[2] == 2:
        return Image.fromarray(img, mode="LA")
    return Image.fromarray(img)


def _colour(img: np.ndarray) -> int:
    """Colour channels of an array as written (alpha aside): 1 (grey) or 3."""
    return 1 if img.ndim == 2 or img.shape[2] <= 2 else 3


def _dpi(meta: dict) -> dict:
    return {"dpi": meta["dpi"]} if meta.get("dpi") else {}


def _as_palette(img: np.ndarray, desc: ImageDescription):
    """A Pillow "P" image in the input's palette, or None when a colour of ``img`` is not in it."""
    from PIL import Image

    pal = desc.palette
    if pal is None or img.ndim != 3 or img.dtype != np.uint8 or img.shape[2] not in (3, 4):
        return None
    channels = img.shape[2]
    if channels == 4 and pal.shape[1] != 4:
        return None
    colours = pal if channels == pal.shape[1] else pal[:, :3]
    indices = palette_indices(img, colours)
    if indices is None or len(pal) > 256:
        return None
    out = Image.fromarray(indices.astype(np.uint8), mode="P")
    out.putpalette(pal[:, :3].tobytes(), rawmode="RGB")
    if pal.shape[1] == 4:
        out.info["transparency"] = pal[:, 3].tobytes()
    return out


def _png(p: Path, img: np.ndarray, desc: ImageDescription, quality: int, notes: list[str]) -> tuple[int, bool]:
    meta = desc.metadata or {}
    same = "png" in meta  # the input was a PNG: its chunks go back in
    if img.dtype.kind == "f":
        notes.append("float samples written as 16-bit (PNG holds no floats)")
        img = _to_16bit(img)
    keyed = _keyed_grey(img, desc, notes)
    if keyed is not None:  # grey with a transparent level, as the input was
        keyed.save(p, format="PNG", compress_level=4, transparency=desc.alpha_key, **({} if same else _dpi(meta)))
    elif img.dtype == np.uint16:
        if img.ndim == 3 and img.shape[2] == 2:  # OpenCV writes 1, 3 or 4 channels; libpng through imagecodecs
            import imagecodecs

            p.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(img)))
        else:
            _write_cv2(p, img, ".png")
    else:
        im = _as_palette(img, desc) if desc.stored == "palette" else None
        if im is None and desc.stored == "palette":
            notes.append("palette PNG written as truecolour (the result's colours are not all in its palette)")
        if im is None and desc.bits == 1 and img.ndim == 2 and np.isin(img, (0, 255)).all():
            im = _pillow_image(img).convert("1")
        elif im is None and desc.bits < 8 and desc.stored == "grey":
            notes.append(f"{desc.bits}-bit grey written as 8-bit grey")
        im = im if im is not None else _pillow_image(img)
        im.save(p, format="PNG", compress_level=4, **({} if same else _dpi(meta)))
    if same and meta.get("png"):
        splice_png(p, meta["png"], meta.get("png_layout", b""), notes)
    if same and desc.compression == "interlaced":
        notes.append("interlaced PNG written without interlacing (the same pixels; no encoder here writes Adam7)")
    return _colour(img), same


def _keyed_grey(img: np.ndarray, desc: ImageDescription, notes: list[str]):
    """A Pillow grey image to write with the input's transparent grey level (tRNS), when the
    result's alpha still says exactly that: off where the grey is that level, on elsewhere."""
    from PIL import Image

    if desc.alpha_key is None or img.ndim != 3 or img.shape[2] != 2 or img.dtype.kind != "u":
        return None
    grey, alpha = img[..., 0], img[..., 1]
    top = np.iinfo(img.dtype).max
    if np.array_equal(alpha == 0, grey == desc.alpha_key) and np.isin(alpha, (0, top)).all():
        return Image.fromarray(grey) if img.dtype == np.uint8 else Image.fromarray(grey.astype(np.uint16), "I;16")
    notes.append("grey with a transparent grey level (tRNS) written as grey + alpha (the result's transparent "
                 "pixels no longer share one grey level)")  # fmt: skip
    return None


def _jpeg(p: Path, img: np.ndarray, desc: ImageDescription, quality: int, notes: list[str]) -> tuple[int, bool]:
    meta = desc.metadata or {}
    img = _drop_alpha(_eight_bit(img, "JPEG", notes), "JPEG", notes)
    colour = _colour(img)
    same = "jpeg" in meta  # the input was a JPEG: its segments go back in
    segments = list(meta.get("jpeg") or [])
    if segments and not profile_fits(meta, colour):
        segments = [s for s in segments if s[4:16] != b"ICC_PROFILE\x00"]
        notes.append(profile_note(meta, colour))
    if desc.lossless and same:
        import imagecodecs

        p.write_bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(img), lossless=True))
        return colour, False
    kwargs = _dpi(meta)
    if desc.subsampling is not None and img.ndim == 3:
        kwargs["subsampling"] = desc.subsampling
    if desc.compression == "progressive":
        kwargs["progressive"] = True
    trailing = desc.trailing if same else None
    if trailing and trailing.kind == "mpo":
        notes.append("the MPO's further images are copied unchanged after the deblurred first image, without its "
                     "MPF index (the offsets in it no longer hold): viewers show the deblurred first image")  # fmt: skip
    elif trailing:
        notes.append(f"the {len(trailing)} bytes after the JPEG image (a motion photo's video, or other data) "
                     "are copied unchanged after the deblurred image")  # fmt: skip
    _pillow_image(img).save(p, format="JPEG", quality=quality, extra=b"".join(segments), **kwargs)
    if trailing:
        with open(p, "ab") as f:
            trailing.copy_to(f)
    return colour, same


def _webp(p: Path, img: np.ndarray, desc: ImageDescription, quality: int, notes: list[str]) -> tuple[int, bool]:
    img = _eight_bit(img, "WebP", notes)
    if img.ndim == 2 or img.shape[2] == 2:
        notes.append("grey written as RGB (WebP holds colour only)")
        grey = np.repeat((img if img.ndim == 2 else img[..., 0])[..., None], 3, axis=2)
        img = grey if img.ndim == 2 else np.concatenate([grey, img[..., 1:]], axis=2)
    kwargs = _webp_blocks(desc, notes)
    kwargs.update({"lossless": True, "quality": 100, "method": 4} if desc.lossless else {"quality": quality})
    if desc.lossless and desc.format != "webp":
        notes.append("written as lossless WebP")
    _pillow_image(img).save(p, format="WEBP", exact=True, **kwargs)
    return 3, "webp" in (desc.metadata or {})


def _webp_blocks(desc: ImageDescription, notes: list[str]) -> dict:
    """A WebP input's own ICCP, EXIF and XMP chunks, as they are (a profile that no longer fits aside)."""
    meta = desc.metadata or {}
    blocks = dict(meta.get("webp") or {})
    if "icc_profile" in blocks and not profile_fits(meta, 3):
        del blocks["icc_profile"]
        notes.append(profile_note(meta, 3))
    return blocks


def _bmp(p: Path, img: np.ndarray, desc: ImageDescription, quality: int, notes: list[str]) -> tuple[int, bool]:
    img = _eight_bit(img, "BMP", notes)
    if desc.format == "bmp" and desc.bits == 16:
        notes.append("16-bit (5-6-5 or 5-5-5) BMP written as 24-bit")
    if img.ndim == 3 and img.shape[2] in (2, 4):  # a version-4 header with an alpha mask (imagecodecs)
        import imagecodecs

        rgba = img if img.shape[2] == 4 else np.concatenate([np.repeat(img[..., :1], 3, axis=2), img[..., 1:]], axis=2)
        p.write_bytes(imagecodecs.bmp_encode(np.ascontiguousarray(rgba)))
        return _colour(img), False
    im = _as_palette(img, desc) if desc.palette is not None else None
    if im is None and desc.bits == 1 and img.ndim == 2 and np.isin(img, (0, 255)).all():
        im = _pillow_image(img).convert("1")  # black and white, as it was
    im = im if im is not None else _pillow_image(img)
    if desc.format == "bmp":
        written = {"1": 1, "L": 8, "P": 8, "RGB": 24}.get(im.mode, 24)
        if desc.bits not in (written, 16):
            notes.append(f"{desc.bits}-bit BMP written as {written}-bit")
        if desc.compression in ("RLE8", "RLE4"):
            notes.append(f"{desc.compression}-compressed BMP written uncompressed")
    im.save(p, format="BMP", **_dpi(desc.metadata or {}))
    return _colour(img), False


def _gif(p: Path, img: np.ndarray, desc: ImageDescription, quality: int, notes: list[str]) -> tuple[int, bool]:
    im = _pillow_frames([img], "gif", notes)[0]
    im.save(p, format="GIF", **_gif_kwargs(im), **_gif_blocks(desc))
    return 3, "gif" in (desc.metadata or {})


def _gif_blocks(desc: ImageDescription) -> dict:
    """A GIF input's comment and loop count (none: it plays once), as they were."""
    return {k: v for k, v in ((desc.metadata or {}).get("gif") or {}).items() if k in ("comment", "loop")}


def _gif_kwargs(im) -> dict:
    return {"transparency": im.info["transparency"]} if "transparency" in im.info else {}


def _pillow_frames(frames: list[np.ndarray], target: str, notes: list[str]) -> list:
    """Pillow images for an animation: GIF frames in an exact palette where the colours fit."""
    out = []
    for f in frames:
        f = _eight_bit(f, target.upper(), notes)
        if f.ndim == 2:
            f = np.repeat(f[..., None], 3, axis=2)
        elif f.shape[2] == 2:
            f = np.concatenate([np.repeat(f[..., :1], 3, axis=2), f[..., 1:]], axis=2)
        out.append(_exact_gif_frame(f, notes) if target == "gif" else _pillow_image(f))
    return out


def _exact_gif_frame(rgb: np.ndarray, notes: list[str]):
    """A "P" image holding exactly the frame's colours (at most 256, one of them transparent),
    or a quantised one with a note."""
    from PIL import Image

    alpha = rgb[..., 3] if rgb.shape[2] == 4 else None
    colours = rgb[..., :3].reshape(-1, 3)
    if alpha is not None:
        if not np.isin(alpha, (0, 255)).all():
            notes.append("partial transparency made binary (GIF holds on/off transparency only)")
    keys = (colours[:, 0].astype(np.int64) << 16) | (colours[:, 1].astype(np.int64) << 8) | colours[:, 2]
    if alpha is not None:  # every transparent pixel takes one entry (the first one's colour): GIF has one
        clear = alpha.reshape(-1) < 128
        if clear.any():
            keys = np.where(clear, -(1 << 24) + keys[np.argmax(clear)], keys)
    uniq, inverse = np.unique(keys, return_inverse=True)
    if len(uniq) > 256:
        notes.append(f"{len(uniq)} colours quantised to a 256-colour palette (GIF holds 256)")
        return Image.fromarray(rgb[..., :3]).quantize(256, dither=Image.Dither.NONE)
    colour = np.where(uniq < 0, uniq + (1 << 24), uniq)
    pal = np.stack([(colour >> 16) & 255, (colour >> 8) & 255, colour & 255], axis=1).astype(np.uint8)
    im = Image.fromarray(inverse.reshape(rgb.shape[:2]).astype(np.uint8), mode="P")
    im.putpalette(pal.tobytes(), rawmode="RGB")
    if alpha is not None and uniq[0] < 0:
        im.info["transparency"] = 0
    return im


def _save_animation(p: Path, images: list, target: str, desc: ImageDescription, quality: int, same: bool,
                    notes: list[str]) -> tuple[int, bool]:  # fmt: skip
    durations = list(desc.durations) if len(desc.durations) == len(images) else [100] * len(images)
    kwargs: dict = {"save_all": True, "append_images": images[1:], "duration": durations}
    if desc.loop is not None or target != "gif":
        kwargs["loop"] = 1 if desc.loop is None else desc.loop
    if target == "webp":
        kwargs.update({"lossless": True, "quality": 100} if desc.lossless else {"quality": quality})
        kwargs.update(_webp_blocks(desc, notes) if same else {})
    elif target == "gif":
        kwargs.update({"disposal": 2, "optimize": False, **_gif_kwargs(images[0])})
        kwargs.update({k: v for k, v in _gif_blocks(desc).items() if k == "comment"} if same else {})
    elif target == "png":
        kwargs.update({"disposal": 0, "blend": 0, "default_image": False})
    images[0].save(p, format={"webp": "WEBP", "gif": "GIF", "png": "PNG"}[target], **kwargs)
    meta = desc.metadata or {}
    if target == "png" and same and meta.get("png"):
        splice_png(p, meta["png"], meta.get("png_layout", b""), notes)
    return 3, same


def _write_cv2(p: Path, img: np.ndarray, suffix: str) -> None:
    import cv2

    if img.ndim == 3:
        code = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}.get(img.shape[2])
        img = cv2.cvtColor(img, code) if code is not None else img
    ok, buf = cv2.imencode(suffix, img)
    if not ok:
        raise OSError(f"{p}: could not encode")
    p.write_bytes(buf.tobytes())
