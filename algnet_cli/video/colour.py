"""How a video's pixels are coded, kept from input to output: YUV matrix, range, primaries, transfer,
HDR10 mastering metadata and field order.

The model works on RGB. A frame is converted to RGB with the input's own matrix and range, and back
with the same ones, and the output is tagged as the input was: a BT.709 clip stays BT.709, a
full-range clip stays full range, and an untagged clip stays untagged (converted both ways with
swscale's default, so that it looks the same as its input in any player). Values are FFmpeg's
(``AVColorSpace``, ``AVColorRange``, ``AVColorPrimaries``, ``AVColorTransferCharacteristic``).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

UNSPECIFIED = 2  # matrix, primaries and transfer
RANGE_UNSPECIFIED, LIMITED, FULL = 0, 1, 2
RGB_MATRIX = 0
BT709, SMPTE170M, BT2020_NCL, BT2020_CL = 1, 6, 9, 10
SRGB_TRANSFER = 13
PQ, HLG = 16, 18
#: swscale converts with these matrices (AVColorSpace -> its SWS_CS_* code); other matrices fall back
#: to its default (BT.601) with a note
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_NAMES = {
    "matrix": {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"},
    "range": {1: "tv", 2: "pc"},
    "primaries": {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020", 11: "smpte431", 12: "smpte432", 22: "ebu3213"},
    "transfer": {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"},
}  # fmt: skip
FIELD_ORDERS = {2: "tt", 3: "bb", 4: "tb", 5: "bt"}  # AVFieldOrder: 0 unknown, 1 progressive


def _interpolation():
    from av.video.reformatter import Interpolation as I

    # exact luma, and chroma that goes 4:2:0 -> RGB -> 4:2:0 nearly unchanged (measured: luma equal but
    # for out-of-gamut values, chroma within 0.1 level on average; the default is off by about 1)
    return I.BICUBIC | I.ACCURATE_RND | I.FULL_CHR_H_INT | I.FULL_CHR_H_INP


@dataclass(frozen=True)
class Colour:
    """A video's colour description; unspecified fields stay unspecified in the output."""

    matrix: int = UNSPECIFIED
    range: int = RANGE_UNSPECIFIED
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    @property
    def hdr(self) -> bool:
        return self.transfer in (PQ, HLG)

    def describe(self) -> str:
        parts = [
            f"{name} {_NAMES[name].get(getattr(self, name), getattr(self, name))}"
            for name in ("matrix", "range", "primaries", "transfer")
            if getattr(self, name) not in (UNSPECIFIED, RANGE_UNSPECIFIED) or (name == "matrix" and self.matrix == 0)
        ]
        return ", ".join(parts) or "untagged"

    def note(self) -> str | None:
        """Why this colour cannot be kept exactly, or None."""
        if self.matrix not in (UNSPECIFIED, RGB_MATRIX) and self.matrix not in _SWS_MATRIX:
            name = _NAMES["matrix"].get(self.matrix, str(self.matrix))
            return f"colour matrix {name} is converted as BT.601 (FFmpeg's scaler has no {name})"
        return None


#: frames that come from still images: sRGB, written as BT.709 YUV (limited range) and tagged so
SRGB = Colour(BT709, LIMITED, BT709, SRGB_TRANSFER)


def colour_of(codec_context, frame=None) -> Colour:
    """The colour description of a stream (its header), completed from its first decoded frame."""
    values = []
    for name in ("colorspace", "color_range", "color_primaries", "color_trc"):
        v = int(getattr(codec_context, name, 0) or 0)
        if frame is not None and v in (UNSPECIFIED, RANGE_UNSPECIFIED) and name != "colorspace":
            v = int(getattr(frame, name, 0) or 0) or v
        values.append(v)
    if frame is not None and values[0] == UNSPECIFIED:
        values[0] = int(getattr(frame, "colorspace", UNSPECIFIED) or UNSPECIFIED)
    return Colour(*values)


def is_rgb_format(pix_fmt: str) -> bool:
    from .libav import pyav

    try:
        return bool(pyav().VideoFormat(pix_fmt, 16, 16).is_rgb)
    except Exception:
        return False


def output_colour(source: Colour, pix_fmt: str) -> Colour:
    """The colour an output in ``pix_fmt`` gets for frames of ``source``'s colour: the same, but an RGB
    output has no matrix, and a YUV output of an RGB source gets BT.709 (limited range), tagged."""
    if is_rgb_format(pix_fmt):
        return Colour(RGB_MATRIX, RANGE_UNSPECIFIED, source.primaries, source.transfer)
    if source.matrix == RGB_MATRIX:
        return Colour(BT709, LIMITED, source.primaries, source.transfer)
    return source


_held = threading.local()


def _reformatter(direction: str):
    """This thread's converter for one direction ('to' or 'from' RGB). A VideoFrame's own ``reformat``
    builds a new swscale context for every frame; a held one is rebuilt only when the size, formats or
    colour settings change (sws_getCachedContext)."""
    held = getattr(_held, direction, None)
    if held is None:
        from av.video.reformatter import VideoReformatter

        held = VideoReformatter()
        setattr(_held, direction, held)
    return held


def conversion(colour: Colour, to_rgb: bool) -> dict:
    """swscale's settings for a frame of a video described by ``colour`` going to full-range RGB
    (``to_rgb``) or coming back from it: the video's own matrix and range, accurate rounding."""
    side, other = ("src", "dst") if to_rgb else ("dst", "src")
    kwargs: dict = {"interpolation": _interpolation()}
    if colour.matrix in _SWS_MATRIX:
        kwargs[f"{side}_colorspace"] = _SWS_MATRIX[colour.matrix]
    if colour.range in (LIMITED, FULL):
        kwargs[f"{side}_color_range"] = colour.range
        kwargs[f"{other}_color_range"] = FULL
    return kwargs


def to_rgb(frame, rgb: str, colour: Colour) -> np.ndarray:
    """A decoded frame as RGB pixels (``rgb``: rgb24, rgb48le or their alpha forms), converted with
    the video's own matrix and range."""
    return _reformatter("to").reformat(frame, format=rgb, **conversion(colour, to_rgb=True)).to_ndarray()


def from_rgb(pixels: np.ndarray, rgb: str, pix_fmt: str, colour: Colour):
    """A VideoFrame in ``pix_fmt`` from RGB pixels, converted with ``colour``'s matrix and range and
    tagged with all four fields (so the encoder neither converts again nor guesses)."""
    from .libav import pyav

    frame = pyav().VideoFrame.from_ndarray(pixels, format=rgb)
    out = _reformatter("from").reformat(frame, format=pix_fmt, **conversion(colour, to_rgb=False))
    tag(out, colour)
    return out


def tag(target, colour: Colour) -> None:
    """Set the four colour fields on a frame or an encoder's codec context."""
    target.colorspace = colour.matrix
    target.color_range = colour.range
    target.color_primaries = colour.primaries
    target.color_trc = colour.transfer


@dataclass(frozen=True)
class Mastering:
    """HDR10 static metadata: the mastering display (SMPTE ST 2086) and content light levels (CTA-861.3)."""

    primaries: tuple[tuple[Fraction, Fraction], ...] | None = None  # (x, y) of red, green, blue
    white: tuple[Fraction, Fraction] | None = None
    luminance: tuple[Fraction, Fraction] | None = None  # (min, max) in cd/m2
    max_cll: int | None = None
    max_fall: int | None = None

    def x265_params(self) -> list[str]:
        """The same values as x265's ``master-display`` and ``max-cll`` settings."""
        params = []
        if self.primaries and self.white and self.luminance:
            (r, g, b), w = self.primaries, self.white

            def xy(p):
                return f"({round(p[0] * 50000)},{round(p[1] * 50000)})"

            lo, hi = self.luminance
            params.append(f"master-display=G{xy(g)}B{xy(b)}R{xy(r)}WP{xy(w)}L({round(hi * 10000)},{round(lo * 10000)})")
        if self.max_cll is not None:
            params.append(f"max-cll={self.max_cll},{self.max_fall or 0}")
        return params

    def describe(self) -> str:
        parts = []
        if self.luminance:
            parts.append(f"mastering display {float(self.luminance[1]):g}/{float(self.luminance[0]):g} cd/m2")
        if self.max_cll is not None:
            parts.append(f"MaxCLL {self.max_cll}, MaxFALL {self.max_fall}")
        return ", ".join(parts)


def mastering_of(frame) -> Mastering | None:
    """HDR10 static metadata carried by a decoded frame (FFmpeg's ``AVMasteringDisplayMetadata`` and
    ``AVContentLightMetadata`` side data, read by their documented layout), or None."""
    if frame is None:
        return None
    fields: dict = {}
    side = frame.side_data
    # PyAV up to 18.1.0 iterates the side data itself; from 18.1.1 the container is a mapping whose
    # iteration gives the types
    for entry in list(side):
        sd = entry if hasattr(entry, "type") else side[entry]
        name = getattr(sd.type, "name", str(sd.type))
        data = bytes(sd)
        if name == "MASTERING_DISPLAY_METADATA" and len(data) >= 88:
            v = struct.unpack_from("<20i2i", data)  # 10 AVRationals (num, den), has_primaries, has_luminance
            rationals = [Fraction(v[2 * i], v[2 * i + 1]) if v[2 * i + 1] else Fraction(0) for i in range(10)]
            if v[20]:
                fields["primaries"] = tuple((rationals[2 * i], rationals[2 * i + 1]) for i in range(3))
                fields["white"] = (rationals[6], rationals[7])
            if v[21]:
                fields["luminance"] = (rationals[8], rationals[9])
        elif name == "CONTENT_LIGHT_LEVEL" and len(data) >= 8:
            fields["max_cll"], fields["max_fall"] = struct.unpack_from("<2I", data)
    return Mastering(**fields) if fields else None
