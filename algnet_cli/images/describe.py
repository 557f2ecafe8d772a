"""What reading learns about an image, in one description that writing honours.

The pixels handed to the model are always H x W (grey) or H x W x C (C in 2..4: grey + alpha, RGB,
RGBA), as uint8, uint16 or float32. How the file stored them (signed samples, 1-bit, a palette,
MinIsWhite, planes, float64, the kind of its extra sample, lossless coding, metadata) is kept here,
so that the output is written back the same way, or a note says what could not be.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class ImageDescription:
    """An image file as read.

    format: png, jpeg, tiff, webp, bmp or gif (identified by the bytes). stored: how the colour
    was coded (grey, rgb, palette, cmyk, ycck, ycbcr). bits: bits per sample in the file.
    sample_format: uint, int or float. dtype: the file's sample dtype (numpy string). planar: TIFF
    samples in separate planes. miniswhite: 0 is white. alpha: the extra sample's kind
    (unassociated, associated, unspecified) or None. palette: (N, 3) or (N, 4) colours of a
    palette image, or None. lossless: the coding loses nothing. frames/frames_kind: a multi-page
    TIFF ("pages") or an animation ("frames"); durations (ms) and loop of an animation.
    compression: how the pixels were coded (a TIFF compression name; a JPEG process such as
    progressive; interlaced for an interlaced PNG; RLE8/RLE4 for a BMP). trailing: bytes after a JPEG's end (a motion photo's
    video). orientation: the EXIF/TIFF orientation the pixels were turned upright from. metadata:
    what the file carries besides pixels (see :mod:`.metadata`): the exiv2 carrier, the format's
    own blocks, resolution, the profile's colour space, TIFF tags.
    """

    format: str
    stored: str = "rgb"
    bits: int = 8
    sample_format: str = "uint"
    dtype: str = "|u1"
    planar: bool = False
    miniswhite: bool = False
    alpha: str | None = None
    palette: np.ndarray | None = field(default=None, compare=False, repr=False)
    lossless: bool = True
    frames: int = 1
    frames_kind: str | None = None
    durations: tuple[int, ...] = ()
    loop: int | None = 0  # None: the file holds no loop count (a GIF without one plays once)
    compression: str | None = None
    subsampling: int | None = None
    trailing: Tail | None = field(default=None, repr=False)
    orientation: int = 1  # the EXIF/TIFF orientation the pixels were turned upright from
    alpha_key: int | None = None  # a grey PNG's transparent level (tRNS), from which its alpha was made
    metadata: dict = field(default_factory=dict, compare=False, repr=False)

    def with_(self, **changes) -> ImageDescription:
        return replace(self, **changes)

    def summary(self) -> dict:
        """The description as plain values, for a run record."""
        out = {
            "format": self.format,
            "stored": self.stored,
            "bits": self.bits,
            "sample_format": self.sample_format,
            "lossless": self.lossless,
        }
        if self.alpha:
            out["alpha"] = self.alpha
        if self.planar:
            out["planar"] = True
        if self.miniswhite:
            out["miniswhite"] = True
        if self.frames > 1:
            out["frames"] = self.frames
        return out


@dataclass(frozen=True)
class Tail:
    """The bytes after a JPEG's end-of-image marker, left in the file until they are copied (they
    can be far larger than the image): ``size`` bytes of ``path`` from ``offset``. kind: "mpo"
    (an MPO's further images) or "data" (a motion photo's video, or other data)."""

    path: str
    offset: int
    size: int
    kind: str = "data"

    def __len__(self) -> int:
        return self.size

    def copy_to(self, out) -> None:
        """Append the bytes to the open binary file ``out``, 1 MiB at a time."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.size
            while left:
                block = f.read(min(left, 1 << 20))
                if not block:
                    raise OSError(f"{self.path}: ended {left} bytes early while its tail was copied")
                out.write(block)
                left -= len(block)


def describe_array(img: np.ndarray, fmt: str = "png") -> ImageDescription:
    """The description of a plain array about to be written (no file behind it)."""
    channels = 1 if img.ndim == 2 else img.shape[2]
    if img.dtype.kind == "f":
        sample, bits = "float", img.dtype.itemsize * 8
    else:
        sample, bits = "uint", img.dtype.itemsize * 8
    return ImageDescription(
        format=fmt,
        stored="grey" if channels <= 2 else "rgb",
        bits=bits,
        sample_format=sample,
        dtype=img.dtype.str,
        alpha="unassociated" if channels in (2, 4) else None,
        lossless=fmt in ("png", "tiff", "bmp", "gif"),
    )


def channel_mode(img: np.ndarray) -> str:
    channels = 1 if img.ndim == 2 else img.shape[2]
    return {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}[channels]
