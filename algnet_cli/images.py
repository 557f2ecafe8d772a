"""Reading and writing images: bit depth, channels, alpha, EXIF orientation.

Pixels are decoded by OpenCV (PNG, JPEG, WebP, BMP) or tifffile (TIFF); Pillow reads only the
EXIF orientation. Arrays are H x W (grey) or H x W x C with C in 1..4, RGB(A) order, dtype
uint8 or uint16 (float TIFFs come back as float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


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


def read_image(path: str | Path, *, orient: bool = True) -> np.ndarray:
    """Decode an image file into an upright RGB(A) or grey array (see the module docstring).

    Raises ImageReadError, naming the file, for missing, empty, truncated or non-image files.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        img = _read_tiff(path)
    else:
        img = _read_cv2(path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if orient:
        img = apply_orientation(img, _orientation(path))
    return img


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        img = tifffile.imread(path)
    except Exception as e:  # tifffile reports damage with many exception types
        raise ImageReadError(
            path, f"not a readable TIFF ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
        ) from None
    if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 3, 4):
        img = np.moveaxis(img, 0, -1)  # planar configuration
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4):
        raise ImageReadError(path, f"unsupported TIFF layout {img.shape}")
    if img.dtype not in (np.uint8, np.uint16):
        img = img.astype(np.float32)
    return img


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
EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
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
    if suffix in (".tif", ".tiff"):
        atomic_write(path, lambda p: _write_tiff(p, img, meta))
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


def _write_pillow(p: Path, img: np.ndarray, suffix: str, quality: int, meta: dict) -> None:
    from PIL import Image

    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        im = Image.fromarray(img, mode="LA")
    else:
        im = Image.fromarray(img)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[suffix]
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
