"""What a file is, from its bytes: the format (the name's suffix is only a hint), and the facts of
its structure that a decoder does not report (a JPEG's precision, process and end; a WebP's
lossless flag).

Only a format identified here is ever handed to a decoder, and only to that format's decoder.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

#: formats that are read and written
READABLE = ("png", "jpeg", "tiff", "webp", "bmp", "gif")

#: formats recognised by their bytes but not read, with the name users know them by
KNOWN_UNREADABLE = {
    "pfm": "PFM (portable float map)",
    "hdr": "Radiance HDR",
    "pnm": "PNM/PGM/PPM",
    "exr": "OpenEXR",
    "avif": "AVIF",
    "heic": "HEIC/HEIF",
    "jxl": "JPEG XL",
    "jp2": "JPEG 2000",
    "psd": "Photoshop PSD",
    "ico": "Windows icon",
    "qoi": "QOI",
}

#: the usual suffixes of each readable format
SUFFIXES = {
    "png": (".png", ".apng"),
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "tiff": (".tif", ".tiff"),
    "webp": (".webp",),
    "bmp": (".bmp", ".dib"),
    "gif": (".gif",),
}


def identify_bytes(head: bytes) -> str | None:
    """The format named by a file's first bytes (at least 32 of them, when the file has them)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 18:
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return _identify_unreadable(head)


def _identify_unreadable(head: bytes) -> str | None:
    if head[:2] in (b"PF", b"Pf") and head[2:3] in (b"\n", b"\r", b" "):
        return "pfm"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "hdr"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3] in b" \t\r\n":
        return "pnm"
    if head[:4] == b"v/1\x01":
        return "exr"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "heic"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "jxl"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "jp2"
    if head[:4] == b"8BPS":
        return "psd"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ico"
    if head[:4] == b"qoif":
        return "qoi"
    return None


def identify(path: str | Path) -> str | None:
    with open(path, "rb") as f:
        return identify_bytes(f.read(64))


def format_name(fmt: str) -> str:
    return KNOWN_UNREADABLE.get(fmt, fmt.upper())


def suffix_matches(path: Path, fmt: str) -> bool:
    return path.suffix.lower() in SUFFIXES.get(fmt, ())


def unreadable_header_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """The width and height that a PFM, PNM or Radiance HDR header claims (None when unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    try:
        if fmt in ("pfm", "pnm"):
            fields = head.split(b"#")[0].split() if fmt == "pfm" else _pnm_fields(head)
            return int(fields[1]), int(fields[2])
        if fmt == "hdr":
            for line in head.split(b"\n")[1:]:
                parts = line.split()
                if len(parts) == 4 and parts[0] in (b"-Y", b"+Y") and parts[2] in (b"+X", b"-X"):
                    return int(parts[3]), int(parts[1])
    except (ValueError, IndexError):
        return None
    return None


def _pnm_fields(head: bytes) -> list[bytes]:
    lines = [ln.split(b"#")[0] for ln in head.split(b"\n")]
    return b" ".join(lines).split()


# -- JPEG structure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JpegInfo:
    """What a JPEG's markers say: its coding process, sample precision, components and their
    sampling, the Adobe colour transform, and where its end-of-image marker is."""

    process: str  # baseline, extended, progressive, lossless, arithmetic, hierarchical
    precision: int
    components: int
    sampling: tuple[tuple[int, int], ...]  # (h, v) per component
    adobe_transform: int | None  # APP14's transform (0: none/CMYK, 1: YCbCr, 2: YCCK)
    end: int | None  # offset just past the EOI marker; None: the file ends before it
    width: int = 0
    height: int = 0
    segments: tuple[tuple[int, int, int], ...] = ()  # (marker, start, end) of each APPn and COM segment

    @property
    def subsampling(self) -> int | None:
        """Pillow's subsampling code (0: 4:4:4, 1: 4:2:2, 2: 4:2:0), None when no such code fits."""
        if self.components != 3:
            return None
        (h0, v0), rest = self.sampling[0], self.sampling[1:]
        if any(s != (1, 1) for s in rest):
            return None
        return {(1, 1): 0, (2, 1): 1, (2, 2): 2}.get((h0, v0))


_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless"}
_SOF.update({m: "hierarchical" for m in (0xC5, 0xC6, 0xC7)})
_SOF.update({m: "arithmetic" for m in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)})


def jpeg_info(data: bytes | mmap.mmap) -> JpegInfo | None:
    """Walk a JPEG's markers (segments by their lengths, entropy-coded data to the next marker).

    None when the markers are damaged before a frame header is found. Data after the EOI marker
    (a motion photo's video, say) is left alone: ``end`` says where the image stops.
    """
    n, i = len(data), 2
    sof: tuple | None = None
    adobe = None
    segments: list[tuple[int, int, int]] = []
    while i + 2 <= n:
        if data[i] != 0xFF:
            return _jpeg_result(sof, adobe, None, segments)
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return _jpeg_result(sof, adobe, i + 2, segments)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if i + 4 > n:
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        body = data[i + 4 : i + 2 + length]
        if marker in _SOF and len(body) >= 6:
            comps = body[5]
            sampling = tuple(
                (body[7 + 3 * k] >> 4, body[7 + 3 * k] & 15) for k in range(comps) if 8 + 3 * k <= len(body)
            )
            sof = (_SOF[marker], body[0], comps, sampling, *struct.unpack(">HH", body[1:5]))
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe = body[11]
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            segments.append((marker, i, min(n, i + 2 + length)))
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data: to the next marker that is not a stuffed byte or a restart
            i = _skip_entropy(data, i)
    return _jpeg_result(sof, adobe, None, segments)


def _skip_entropy(data: bytes | mmap.mmap, i: int) -> int:
    n = len(data)
    while True:
        j = data.find(b"\xff", i)
        if j < 0 or j + 1 >= n:
            return n
        nxt = data[j + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            i = j + (2 if nxt != 0xFF else 1)
            continue
        return j


def _jpeg_result(sof, adobe, end, segments=()) -> JpegInfo | None:
    if sof is None:
        return None
    process, precision, comps, sampling, height, width = sof
    return JpegInfo(process, precision, comps, sampling, adobe, end, width, height, tuple(segments))


# -- WebP structure ----------------------------------------------------------------------------


def webp_lossless(data: bytes) -> bool:
    """Whether every image in a WebP file (each frame of an animation) is coded lossless (VP8L)."""
    codings: list[bytes] = []
    _riff_codings(data, 12, len(data), codings)
    return bool(codings) and all(c == b"VP8L" for c in codings)


def _riff_codings(data: bytes, i: int, end: int, out: list[bytes]) -> None:
    while i + 8 <= end:
        fourcc = data[i : i + 4]
        (size,) = struct.unpack("<I", data[i + 4 : i + 8])
        body = i + 8
        if fourcc in (b"VP8 ", b"VP8L"):
            out.append(fourcc)
        elif fourcc == b"ANMF":
            _riff_codings(data, body + 16, min(end, body + size), out)
        i = body + size + (size & 1)
