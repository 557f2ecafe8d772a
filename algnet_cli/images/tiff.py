"""TIFF, read and written by its tags: photometric, planar configuration, extra samples, sample
format, bits per sample, colour map, compression, resolution and the descriptive tags.

The layout is taken from the page, never guessed from the array's shape. Samples the model cannot
take exactly (32- and 64-bit integers) are refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .describe import ImageDescription

#: tags written from the description rather than passed through: resolution (282, 283, 296)
_OWN_TAGS = frozenset({282, 283, 296})
EXTRA_KINDS = {0: "unspecified", 1: "associated", 2: "unassociated"}
#: compressions written back as they came; any other is written as zlib (lossless)
KEPT_COMPRESSIONS = ("NONE", "LZW", "ADOBE_DEFLATE", "DEFLATE", "PACKBITS", "ZSTD", "LZMA", "WEBP_LOSSLESS")


def read_tiff(path: Path, notes: list[str], orient: bool = True) -> tuple[list[np.ndarray], list[ImageDescription]]:
    """Full-resolution pages (reduced-resolution ones are thumbnails: skipped), as arrays the model
    takes, each turned upright by its own Orientation tag (with ``orient``), with each page's
    description."""
    import tifffile

    from .metadata import carrier_of

    try:
        with tifffile.TiffFile(path) as tf:
            if 50706 in tf.pages[0].tags:  # DNGVersion: the pages are a preview and raw sensor data
                raise ImageReadError(path, "a DNG raw file (camera sensor data, with a small preview); algnet "
                                           "deblurs developed images: develop it to TIFF or JPEG first")  # fmt: skip
            pages = [p for p in tf.pages if not (int(getattr(p, "subfiletype", 0) or 0) & 1)] or [tf.pages[0]]
            out = [_page(path, p, notes, orient) for p in pages]
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile reports damage with many exception types
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ImageReadError(path, f"damaged TIFF ({detail})") from None
    frames = [a for a, _ in out]
    descs = [d for _, d in out]
    carrier, kinds = carrier_of(path)  # exiv2 reads the file itself: the pages are not read twice
    if carrier:
        descs = [d.with_(metadata={**d.metadata, "carrier": carrier, "kinds": kinds}) for d in descs]
    if len(descs) > 1:
        descs = [d.with_(frames=len(descs), frames_kind="pages") for d in descs]
    return frames, descs


def _page(path: Path, page, notes: list[str], orient: bool) -> tuple[np.ndarray, ImageDescription]:
    import tifffile

    from .orient import apply_orientation

    PH = tifffile.PHOTOMETRIC
    photometric = PH(page.photometric)
    bits, samples = int(page.bitspersample), int(page.samplesperpixel)
    fmt = {1: "uint", 2: "int", 3: "float"}.get(int(page.sampleformat), "other")
    extras = tuple(int(e) for e in (page.extrasamples or ()))
    arr = page.asarray()
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples > 1:
        arr = np.moveaxis(arr, -3, -1)  # (samples, H, W) -> (H, W, samples)
    arr = arr.reshape(int(page.imagelength), int(page.imagewidth), -1)
    stored = {PH.MINISBLACK: "grey", PH.MINISWHITE: "grey", PH.RGB: "rgb", PH.PALETTE: "palette",
              PH.SEPARATED: "cmyk", PH.YCBCR: "ycbcr"}.get(photometric)  # fmt: skip
    if stored is None:
        raise ImageReadError(path, f"TIFF photometric {photometric.name} is not supported")
    colour = {"grey": 1, "rgb": 3, "palette": 1, "cmyk": 4, "ycbcr": 3}[stored]
    if len(extras) > 1 or arr.shape[2] > colour + 1:
        raise ImageReadError(path, f"TIFF with {arr.shape[2] - colour} extra samples; algnet keeps at most one (alpha)")
    arr, dtype = _to_model_samples(path, arr, fmt, bits)
    palette = None
    if stored == "palette":
        arr, palette = _expand_palette(page, arr)
    elif stored == "cmyk":
        arr = _cmyk_to_rgb(arr)
        notes.append("CMYK converted to RGB (naive, without a colour profile)")
    elif stored == "ycbcr":
        notes.append("YCbCr TIFF decoded to RGB")
    miniswhite = photometric == PH.MINISWHITE
    if miniswhite:
        arr = _invert(arr, bits)
    if bits == 1:
        arr = (arr > 0).astype(np.uint8) * np.uint8(255)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    tag = page.tags.get(274)
    orientation = int(tag.value) if orient and tag is not None and 1 <= int(tag.value) <= 8 else 1
    arr = apply_orientation(arr, orientation)
    desc = ImageDescription(
        format="tiff",
        stored=stored,
        bits=bits,
        sample_format=fmt,
        dtype=dtype,
        planar=page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples > 1,
        miniswhite=miniswhite,
        alpha=EXTRA_KINDS.get(extras[0], "unspecified") if extras else None,
        palette=palette,
        lossless=page.compression not in (tifffile.COMPRESSION.JPEG, tifffile.COMPRESSION.OJPEG, 34892, 50001),
        compression=tifffile.COMPRESSION(page.compression).name,
        orientation=orientation,
        metadata=_tiff_metadata(page, orientation),
    )
    return np.ascontiguousarray(arr), desc


def _to_model_samples(path: Path, arr: np.ndarray, fmt: str, bits: int) -> tuple[np.ndarray, str]:
    """Samples as uint8, uint16 or float32 (signed integers offset to unsigned, exactly)."""
    dtype = arr.dtype.str
    if fmt == "float":
        return arr.astype(np.float32, copy=False), dtype
    if fmt == "int" and arr.dtype in (np.int8, np.int16):
        unsigned = np.uint8 if arr.dtype == np.int8 else np.uint16
        offset = 128 if arr.dtype == np.int8 else 32768
        return (arr.astype(np.int32) + offset).astype(unsigned), dtype
    if fmt == "uint" and arr.dtype in (np.uint8, np.uint16, np.bool_):
        arr = arr.astype(np.uint8) if arr.dtype == np.bool_ else arr
        if bits not in (1, 8, 16):  # 2-, 4-, 12-bit samples: scaled to the full range of their container
            top = float(np.iinfo(arr.dtype).max)
            arr = np.floor(arr.astype(np.float64) * (top / (2**bits - 1)) + 0.5).astype(arr.dtype)
        return arr, dtype
    raise ImageReadError(
        path,
        f"{bits}-bit {'signed ' if fmt == 'int' else ''}{'integer' if fmt in ('int', 'uint') else fmt} TIFF samples "
        "are not supported: the model computes in float32 (24-bit precision); convert to 16-bit or float",
    )


def _expand_palette(page, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cmap = np.asarray(page.colormap)  # (3, 2**bits), 16-bit
    if np.all(cmap % 257 == 0):
        cmap = (cmap // 257).astype(np.uint8)
    pal = np.ascontiguousarray(cmap.T)
    return pal[np.minimum(indices[..., 0], len(pal) - 1).astype(np.intp)], pal


def _invert(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype.kind == "f":
        return (1.0 - arr).astype(arr.dtype)
    top = 1 if bits == 1 else np.iinfo(arr.dtype).max
    out = arr.copy()
    out[..., :1] = top - arr[..., :1]  # the grey sample only; an alpha sample is not inverted
    return out


def _cmyk_to_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 4+) CMYK ink (0 = no ink) -> (H, W, 3) RGB: each channel (1 - ink)(1 - K), as JPEG decoders do."""
    white = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    ink = img[..., :4].astype(np.float32) / white
    rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])
    if np.issubdtype(img.dtype, np.integer):
        return np.floor(rgb * white + 0.5).astype(img.dtype)
    return rgb.astype(np.float32)


def _tiff_metadata(page, orientation: int) -> dict:
    """Every tag of a page that is not about how its pixels are stored (GeoTIFF, IPTC, XMP,
    Photoshop's, ICC, descriptive strings, unknown private tags), as (code, type, count, value) to
    pass through; the orientation and XMP made upright; the resolution apart."""
    from .metadata import STRUCTURE_TAGS, fix_xmp_orientation, icc_space

    tags = []
    for tag in page.tags:
        code, value = tag.code, tag.value
        if code in STRUCTURE_TAGS or code in _OWN_TAGS:
            continue
        if code == 270 and isinstance(value, str) and value.startswith('{"shape":'):  # tifffile's own shape note
            continue
        if code == 274:
            value = 1  # the pixels are stored upright from now on
        elif code == 700 and orientation != 1:
            value = fix_xmp_orientation(bytes(value))
        tags.append((code, int(tag.dtype), 0 if code == 700 else tag.count, value))
    meta: dict = {"tiff_tags": tags}
    if page.is_tiled:  # kept as it was: the tile shape, and the predictor
        meta["tile"] = (int(page.tilelength), int(page.tilewidth))
    if int(page.predictor or 1) != 1:
        meta["predictor"] = int(page.predictor)
    for code in (282, 283, 296):
        tag = page.tags.get(code)
        if tag is not None:
            meta.setdefault("resolution", {})[code] = tag.value
    meta["icc_space"] = icc_space(bytes(page.iccprofile) if page.iccprofile else None)
    return meta


def write_tiff(p: Path, frames: list[np.ndarray], descs: list[ImageDescription], notes: list[str]) -> int:
    """Write ``frames`` (model samples) as a TIFF, each page as its description says; returns the
    colour channels of the first page."""
    import tifffile

    with tifffile.TiffWriter(p) as tw:
        for img, desc in zip(frames, descs):
            data, kwargs = _page_back(img, desc, notes)
            tw.write(data, metadata=None, **kwargs)
    return 1 if frames[0].ndim == 2 or frames[0].shape[2] <= 2 else 3


def _page_back(img: np.ndarray, desc: ImageDescription, notes: list[str]) -> tuple[np.ndarray, dict]:
    """The samples and tags of one page as the input stored them (or a note where they cannot be)."""
    arr = img if img.ndim == 3 else img[:, :, None]
    channels = arr.shape[2]
    colour = channels - (1 if desc.alpha else 0)
    kwargs: dict = {"compression": _compression(desc)}
    meta = desc.metadata or {}
    if meta.get("tile"):
        kwargs["tile"] = meta["tile"]
    if meta.get("predictor") and kwargs["compression"] not in ("none", "packbits"):
        kwargs["predictor"] = meta["predictor"]
    if desc.alpha:
        kwargs["extrasamples"] = [{"unspecified": 0, "associated": 1}.get(desc.alpha, 2)]
    if desc.stored == "palette" and desc.palette is not None and colour == 3:
        indices = palette_indices(arr[..., :3], desc.palette[:, :3])
        if indices is not None and not desc.alpha:
            cmap = desc.palette[:, :3].T.astype(np.uint16) * (257 if desc.palette.dtype == np.uint8 else 1)
            return indices.astype(np.uint8 if len(desc.palette) <= 256 else np.uint16), {
                **kwargs, "photometric": "palette", "colormap": cmap, **_tags(desc, 3, notes)}  # fmt: skip
        notes.append("palette TIFF written as RGB (the result's colours are not all in its palette)")
    photometric = "rgb" if colour >= 3 else ("miniswhite" if desc.miniswhite else "minisblack")
    data = _samples_back(arr, desc, notes, colour)
    if desc.miniswhite and colour == 1 and data.dtype != np.bool_:  # 1-bit samples come back inverted already
        data = _invert(data, desc.bits)
    if desc.planar and channels > 1:
        data = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        kwargs["planarconfig"] = "separate"
    elif data.shape[2] == 1:
        data = data[:, :, 0]
    return data, {**kwargs, "photometric": photometric, **_tags(desc, 3 if colour >= 3 else 1, notes)}


def _samples_back(arr: np.ndarray, desc: ImageDescription, notes: list[str], colour: int) -> np.ndarray:
    target = np.dtype(desc.dtype) if desc.dtype else arr.dtype
    if desc.bits == 1 and colour == 1 and arr.dtype == np.uint8:
        if np.isin(arr[..., 0], (0, 255)).all() and not desc.alpha:
            bits = arr[..., 0] == 255
            return (~bits if desc.miniswhite else bits)[..., None]
        notes.append("1-bit TIFF written as 8-bit grey (the result has grey levels)")
        return arr
    if desc.sample_format == "int" and target.kind == "i":
        offset = 128 if target == np.int8 else 32768
        return (arr.astype(np.int32) - offset).astype(target)
    if desc.sample_format == "float":
        if target == np.float64:
            notes.append("float64 samples computed, and written back, at float32 precision")
        return arr.astype(target)
    if desc.bits not in (1, 8, 16) and desc.sample_format == "uint":
        notes.append(f"{desc.bits}-bit samples written as {arr.dtype.itemsize * 8}-bit (scaled to its full range)")
    return arr


def _compression(desc: ImageDescription) -> str:
    if desc.compression in KEPT_COMPRESSIONS:
        return {"ADOBE_DEFLATE": "zlib", "DEFLATE": "zlib", "WEBP_LOSSLESS": "zlib"}.get(
            desc.compression, desc.compression.lower()
        )
    return "zlib"


def _tags(desc: ImageDescription, colour: int, notes: list[str]) -> dict:
    """The page's own tags, passed through (a colour profile that no longer fits aside), and its resolution."""
    from .metadata import profile_fits, profile_note

    meta = desc.metadata or {}
    out: dict = {"software": False}
    extratags = []
    for code, dtype, count, value in meta.get("tiff_tags") or ():
        if code == 34675 and not profile_fits(meta, colour):
            notes.append(profile_note(meta, colour))
            continue
        extratags.append((code, dtype, count, value, True))
    res = meta.get("resolution") or {}
    if 282 in res and 283 in res:
        out["resolution"] = (res[282], res[283])
        if 296 in res:
            out["resolutionunit"] = int(res[296])
    out["extratags"] = extratags
    return out


def palette_indices(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray | None:
    """Each pixel's index in ``palette`` ((N, C) colours), or None when a colour is not in it."""
    flat = rgb.reshape(-1, rgb.shape[-1]).astype(np.int64)
    pal = palette.astype(np.int64)
    shift = 17 if palette.dtype != np.uint8 else 8
    keys = np.zeros(len(flat), np.int64)
    pkeys = np.zeros(len(pal), np.int64)
    for c in range(flat.shape[1]):
        keys = (keys << shift) | flat[:, c]
        pkeys = (pkeys << shift) | pal[:, c]
    order = np.argsort(pkeys, kind="stable")
    sorted_keys = pkeys[order]
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    if not np.array_equal(sorted_keys[pos], keys):
        return None
    return order[pos].reshape(rgb.shape[:-1])
