"""Metadata carried whole, then fixed where the pixels changed.

Reading keeps two things of an image's metadata:

- its format's own blocks, as they are: a JPEG's APPn and COM segments, a PNG's ancillary chunks
  (text with its language tag, gAMA, cHRM, sRGB, sBIT, bKGD, tIME, eXIf, iCCP, private chunks...),
  a WebP's ICCP, EXIF and XMP chunks. Written back into the same format, they are copied byte for
  byte (TIFF tags are passed through by :mod:`.tiff`);
- a *carrier*: an in-memory PNG into which exiv2 (python-exiv2) has copied the file's EXIF (with its
  GPS, interoperability and maker-note blocks), IPTC, XMP, ICC profile and comment. Written into
  another format, exiv2 copies it into the output, in whatever block that format holds.

Writing then fixes only what the pixels changed: the orientation in EXIF and in XMP (the pixels are
stored upright), the pixel dimensions both record, and a colour profile that no longer fits the
output's colour model (a CMYK profile on RGB samples). Whatever the output cannot hold is a note.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: TIFF/EXIF IFD0 tags that describe how the pixels are stored: written by each encoder for its own
#: pixels, never copied from the input
STRUCTURE_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 290, 291, 292, 293, 317, 320, 322, 323,
    324, 325, 330, 338, 339, 340, 341, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532,
    32995, 32996, 32997, 32998, 34665, 34853, 40965,
})  # fmt: skip
#: PNG chunks that the encoder writes for its own pixels (or animation), never copied
PNG_OWN = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT"})
#: PNG chunks whose content depends on the pixels' colour type and bit depth: copied only when those are kept
PNG_LAYOUT = frozenset({b"sBIT", b"bKGD", b"hIST", b"sPLT"})
#: PNG chunks whose meaning is known to survive a change of pixel values in the same colour space
PNG_KNOWN = frozenset({b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCV", b"cLLI", b"mDCv", b"cLLi", b"pHYs",
                       b"tIME", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"oFFs", b"pCAL", b"sCAL", b"sTER", b"dSIG"})  # fmt: skip
#: JPEG segments that belong to the coding or to the file's layout, not to the image's description:
#: JFIF (the encoder writes its own), Adobe's colour transform, the MPF index of an MPO
_JPEG_CODING = (b"JFIF\x00", b"Adobe", b"MPF\x00")
#: exiv2's groups for the other images of a TIFF (pages, sub-images)
_OTHER_PAGES = ("SubImage", "Image2", "Image3", "SubThumb")
#: PNG chunks that go before PLTE (PNG spec 5.6)
_PNG_FIRST = frozenset({b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"cICP", b"mDCV", b"cLLI", b"mDCv", b"cLLi"})


@functools.cache
def _exiv2():
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    exiv2.XmpParser.initialize()
    return exiv2


# -- reading ----------------------------------------------------------------------------------


def carrier_of(data: bytes | Path) -> tuple[bytes | None, tuple[str, ...]]:
    """The EXIF, IPTC, XMP, ICC profile and comment of an image file (its bytes, or its path: exiv2
    then reads only what it needs), copied by exiv2 into an in-memory PNG, and the names of those
    present; (None, ()) when there are none, or exiv2 cannot read the file."""
    exiv2 = _exiv2()
    try:
        src = exiv2.ImageFactory.open(str(data) if isinstance(data, Path) else data)
        src.readMetadata()
        kinds = _kinds(src)
        if not kinds:
            return None, ()
        carrier = exiv2.ImageFactory.create(exiv2.ImageType.png)
        carrier.setMetadata(src)  # EXIF, IPTC, XMP and comment
        if src.iccProfileDefined():
            carrier.setIccProfile(src.iccProfile())
        carrier.writeXmpFromPacket(True)  # the XMP packet as it was, not re-serialised
        carrier.writeMetadata()
        return bytes(carrier.io().mmap()), kinds
    except Exception:  # noqa: BLE001 - exiv2 reports damage with many types: the pixels still count
        return None, ()


def _kinds(image) -> tuple[str, ...]:
    exif = [d for d in image.exifData() if not (d.groupName() == "Image" and d.tag() in STRUCTURE_TAGS)]
    present = {"EXIF": bool(exif), "IPTC": image.iptcData().count() > 0, "XMP": image.xmpData().count() > 0,
               "ICC profile": image.iccProfileDefined(), "comment": bool(image.comment())}  # fmt: skip
    return tuple(k for k, v in present.items() if v)


def jpeg_segments(data: bytes, segments) -> list[bytes]:
    """The raw APPn and COM segments of a JPEG (``segments``: (marker, start, end) offsets), except
    those that belong to its coding (JFIF, Adobe, MPF)."""
    out = []
    for marker, start, end in segments:
        body = data[start + 4 : end]
        if marker == 0xFE or (0xE0 <= marker <= 0xEF and not body.startswith(_JPEG_CODING)):
            out.append(data[start:end])
    return out


def png_chunks(data: bytes) -> tuple[list[tuple[bytes, bytes, bool]], bytes | None]:
    """Every ancillary chunk of a PNG as (type, data, after_image_data), in file order, and its
    tRNS chunk's data (None: it has none), in one pass over the chunks."""
    import png

    out, trns, seen_idat = [], None, False
    for kind, body in png.Reader(bytes=data).chunks():
        if kind == b"IDAT":
            seen_idat = True
        elif kind == b"tRNS":
            trns = body
        elif kind not in PNG_OWN and kind[:1].islower():
            out.append((kind, body, seen_idat))
    return out, trns


def fix_xmp_orientation(packet: bytes) -> bytes:
    """An XMP packet whose tiff:Orientation says the pixels are stored upright (exiv2 parses it
    through an in-memory carrier)."""
    exiv2 = _exiv2()
    try:
        carrier = exiv2.ImageFactory.create(exiv2.ImageType.png)
        carrier.setXmpPacket(packet.decode("utf-8", "replace").strip("\x00"))
        carrier.writeXmpFromPacket(True)
        carrier.writeMetadata()
        parsed = exiv2.ImageFactory.open(bytes(carrier.io().mmap()))
        parsed.readMetadata()
        data = parsed.xmpData()
        if "Xmp.tiff.Orientation" not in data:
            return packet
        data["Xmp.tiff.Orientation"] = "1"
        status, out = exiv2.XmpParser.encode(data)
        return out.encode("utf-8") if status == 0 else packet
    except Exception:  # noqa: BLE001 - an XMP packet exiv2 cannot parse is passed through as it was
        return packet


def icc_space(icc: bytes | None) -> str | None:
    """The colour space an ICC profile is made for: 'RGB', 'GRAY', 'CMYK', ...; None if unreadable."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip() or None


# -- writing ----------------------------------------------------------------------------------


def profile_fits(meta: dict, channels: int) -> bool:
    """Whether the input's colour profile (if any) still describes samples of ``channels`` colour channels."""
    space = meta.get("icc_space")
    return space is None or space == ("GRAY" if channels == 1 else "RGB")


def profile_note(meta: dict, channels: int) -> str:
    """The note for an input profile that :func:`profile_fits` says does not fit the output."""
    model = "grey" if channels == 1 else "RGB"
    return f"the input's {meta['icc_space']} colour profile is not embedded: it does not describe the {model} output"


def splice_png(path: Path, chunks: list[tuple[bytes, bytes, bool]], layout: bytes, notes: list[str]) -> None:
    """Put the input's ancillary PNG ``chunks`` into the PNG at ``path`` (its own chunks of those
    types give way), where the PNG spec places them: colour-space chunks first, the others before
    the image data, or after it as they were. ``layout``: the input's bit depth and colour type
    (chunks laid out for those are copied only when the output keeps them)."""
    import png

    own = list(png.Reader(filename=str(path)).chunks())
    same_layout = own[0][1][8:10] == layout
    kept, dropped = [], []
    for kind, body, after in chunks:
        if kind in PNG_LAYOUT and not same_layout:
            dropped.append(kind.decode("latin-1"))
        elif kind in PNG_KNOWN or kind in PNG_LAYOUT or kind[3:4].islower():  # safe to copy (PNG spec 5.4)
            kept.append((kind, body, after))
        else:
            dropped.append(kind.decode("latin-1"))
    if dropped:
        notes.append(f"PNG chunks {', '.join(dict.fromkeys(dropped))} not kept (they describe the input's own pixels)")
    replaced = {kind for kind, _, _ in kept}
    first = [(k, b) for k, b, after in kept if not after and k in _PNG_FIRST]
    before = [(k, b) for k, b, after in kept if not after and k not in _PNG_FIRST]
    behind = [(k, b) for k, b, after in kept if after]
    out: list[tuple[bytes, bytes]] = []
    for kind, body in own:
        if kind in replaced:
            continue
        if kind in (b"acTL", b"fcTL", b"IDAT") and before:
            out.extend(before)
            before = []
        if kind == b"IEND":
            out.extend(behind)
        out.append((kind, body))
        if kind == b"IHDR":
            out.extend(first)
    with open(path, "wb") as f:
        png.write_chunks(f, out)


def carry(path: Path, target: str, meta: dict, *, copied: bool, orientation: int, size: tuple[int, int],
          colour: int, pages: int, notes: list[str]) -> None:  # fmt: skip
    """Finish the metadata of the freshly encoded image at ``path`` (format ``target``, ``colour``
    colour channels, ``pages`` pages or frames). ``copied``: the input's own blocks went in as they
    were (then only what the pixels changed is fixed); otherwise exiv2 copies the carrier in."""
    carrier = meta.get("carrier")
    turned = orientation not in (0, 1)
    if not carrier:
        return
    kinds = meta.get("kinds") or ()
    if target in ("bmp", "gif"):  # exiv2 writes neither
        lost = [k for k in kinds if not (copied and k == "comment")]
        if lost:
            notes.append(f"{', '.join(lost)} metadata not kept ({target.upper()} is written without it)")
        return
    exiv2 = _exiv2()
    src = _parse(exiv2, carrier) if target == "tiff" else None  # a TIFF's own tags went in: its sub-IFDs?
    sub_ifds = src is not None and any(_in_sub_ifd(d) for d in src.exifData())
    if target == "tiff" and pages > 1:  # exiv2 would write the first page only
        lost = ["EXIF"] if copied and sub_ifds else [] if copied else list(kinds)
        if lost:
            notes.append(f"{', '.join(lost)} metadata not kept (a {pages}-page TIFF is written with each page's "
                         "tags, not the EXIF and GPS blocks they point to)" if copied else
                         f"{', '.join(lost)} metadata not kept (a {pages}-page TIFF is written without it)")  # fmt: skip
        return
    if copied and not turned and not sub_ifds:
        return  # the blocks went in as they were, and nothing in them is out of date
    try:
        out = exiv2.ImageFactory.open(str(path))
        out.readMetadata()
        src = src or _parse(exiv2, carrier)
        if not copied:
            _copy_into(exiv2, out, src, target, meta, colour, notes)
        elif target == "tiff":  # the page's tags went in; the EXIF, GPS and maker-note blocks they point to too
            exif = out.exifData()
            for datum in src.exifData():
                if _in_sub_ifd(datum):
                    exif.add(datum)
        changed = _fix(out, turned, size)
        out.writeXmpFromPacket(not changed & {"XMP"})  # an unchanged XMP packet goes back as it was
        if changed & {"Orientation"}:
            notes.append("the pixels are stored upright: orientation set to upright in EXIF and XMP")
        out.writeMetadata()
    except Exception as e:  # noqa: BLE001 - the pixels are written; say what could not be carried
        notes.append(f"metadata not carried ({type(e).__name__}: {e})")


def _parse(exiv2, carrier: bytes):
    src = exiv2.ImageFactory.open(carrier)
    src.readMetadata()
    return src


def _in_sub_ifd(datum) -> bool:
    """An EXIF entry of the blocks IFD0 points to (EXIF, GPS, interoperability, maker notes), not of
    IFD0 itself, its thumbnail, or another page of a TIFF."""
    group = datum.groupName()
    return group not in ("Image", "Thumbnail") and not group.startswith(_OTHER_PAGES)


def _copy_into(exiv2, out, src, target: str, meta: dict, channels: int, notes: list[str]) -> None:
    """The carrier's EXIF (less the input's pixel layout), IPTC, XMP, profile (where it fits) and
    comment, into whatever blocks the output's format holds."""
    exif = exiv2.ExifData()
    for datum in src.exifData():
        if datum.groupName() == "Image" and datum.tag() in STRUCTURE_TAGS:
            continue
        if datum.groupName().startswith(_OTHER_PAGES):
            continue  # the layout of another page of a TIFF
        exif.add(datum)
    out.setExifData(exif)
    iptc, xmp = src.iptcData(), src.xmpData()
    if iptc.count():
        if target == "webp":
            notes.append("IPTC metadata not kept (WebP holds no IPTC block; its XMP and EXIF are kept)")
        else:
            out.setIptcData(iptc)
    out.setXmpData(xmp)
    if src.xmpPacket():
        out.setXmpPacket(src.xmpPacket())  # the packet as it was (re-serialised only if something in it changes)
    if src.iccProfileDefined():
        if profile_fits(meta, channels):
            out.setIccProfile(src.iccProfile())
        else:
            notes.append(profile_note(meta, channels))
    if src.comment() and target in ("jpeg", "png"):
        out.setComment(src.comment())


def _fix(out, turned: bool, size: tuple[int, int]) -> set[str]:
    """Orientation and pixel dimensions, in every block that records them, as the pixels now are;
    what changed ("Orientation", and the blocks: "EXIF", "XMP")."""
    w, h = size
    exif, xmp = out.exifData(), out.xmpData()
    changed: set[str] = set()
    if turned:
        for data, key in ((exif, "Exif.Image.Orientation"), (xmp, "Xmp.tiff.Orientation")):
            if key in data and data[key].toString() != "1":
                data[key] = 1 if data is exif else "1"
                changed |= {"Orientation", "EXIF" if data is exif else "XMP"}
    for data, keys in ((exif, ("Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension")),
                       (xmp, ("Xmp.exif.PixelXDimension", "Xmp.exif.PixelYDimension")),
                       (xmp, ("Xmp.tiff.ImageWidth", "Xmp.tiff.ImageLength"))):  # fmt: skip
        for key, value in zip(keys, (w, h)):
            if key in data and data[key].toString() != str(value):
                data[key] = value if data is exif else str(value)
                changed.add("EXIF" if data is exif else "XMP")
    return changed
