"""What a file carries besides its pixels comes back whole.

Inputs get their metadata from exiftool, tifffile or Pillow; outputs are read back with
``exiftool -a -G1`` (Debian's libimage-exiftool-perl). After an identity round trip every tag of
the input is in the output with the same value, except the ones a note names, and the ones the
pixels changed (orientation, made upright in every block).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter

import numpy as np
import pytest
import tifffile
from helpers.cli import run_cli, write_identity_checkpoint
from PIL import Image, ImageCms, PngImagePlugin

from algnet_cli.batch.plan import Job
from algnet_cli.batch.stills import load_image, save_image

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool (libimage-exiftool-perl)")

#: groups about the file or computed by exiftool, not carried by the file's metadata
NOT_METADATA = ("System", "File", "ExifTool", "Composite")
#: how the pixels are laid out in the file (where a TIFF's strips lie; the colour index a GIF encoder
#: chose for unchanged pixels between frames): written anew with the pixels
LAYOUT = ("StripOffsets", "StripByteCounts", "RowsPerStrip", "TileOffsets", "TileByteCounts", "TransparentColor")


def tags(path) -> Counter:
    """Every (group, tag, value) exiftool reads from a file, duplicates counted."""
    out = subprocess.run(["exiftool", "-a", "-G1", "-s", "-n", "-charset", "utf8", str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    found = Counter()
    for line in out.splitlines():
        group, rest = line[1:].split("]", 1)
        name, _, value = rest.strip().partition(":")
        if group.strip() not in NOT_METADATA and name.strip() not in LAYOUT:
            found[(group.strip(), name.strip(), value.strip())] += 1
    return found


def exiftool(path, *args):
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args, str(path)], check=True, capture_output=True)


def roundtrip(src, dst):
    """The decoded pixels written back through the same path the CLI takes: (notes, pixels read)."""
    job = Job(src, dst)
    dec = load_image(job)
    frames = dec.opened.frames
    notes = dec.notes + save_image(job, frames if len(frames) > 1 else frames[0], dec)
    return notes, dec


def missing(src, dst) -> set:
    """The input's tags that the output lacks or holds with another value."""
    a, b = tags(src), tags(dst)
    return {t for t in a if b[t] < a[t]}


def photo(h=24, w=32):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7) % 256, (y * 9) % 256, ((x + y) * 5) % 256], -1).astype(np.uint8)


def srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_profile() -> bytes:
    """A minimal ICC profile for CMYK data (a header and an empty tag table)."""
    header = bytearray(128)
    struct.pack_into(">I", header, 0, 132)
    header[8:12] = b"\x04\x20\x00\x00"
    header[12:16], header[16:20], header[20:24], header[36:40] = b"prtr", b"CMYK", b"Lab ", b"acsp"
    return bytes(header) + b"\x00\x00\x00\x00"


JPEG_TAGS = ["-EXIF:Make=AcmeCam", "-EXIF:Model=Shaky 1", "-EXIF:DateTimeOriginal=2024:05:06 07:08:09",
             "-EXIF:ExposureTime=0.125", "-GPSLatitude=41.4", "-GPSLatitudeRef=N", "-GPSLongitude=2.17",
             "-GPSLongitudeRef=E", "-IPTC:Keywords=harbour", "-IPTC:Keywords=dusk", "-IPTC:Caption-Abstract=Boats",
             "-IPTC:By-line=A. Photographer", "-IPTC:CopyrightNotice=(c) 2024 A. Photographer",
             "-XMP-dc:Title=Evening", "-XMP-dc:Creator=A. Photographer", "-Comment=taken from the pier"]  # fmt: skip


def test_jpeg_keeps_exif_gps_iptc_xmp_extended_xmp_icc_and_comment(tmp_path):
    src = tmp_path / "a.jpg"
    Image.fromarray(photo()).save(src, quality=92, icc_profile=srgb())
    (tmp_path / "long.txt").write_text("a long description " * 5000)  # > 64 KB: exiftool writes Extended XMP
    exiftool(src, *JPEG_TAGS, f"-XMP-dc:Description<={tmp_path / 'long.txt'}")
    assert ("XMP-xmpNote", "HasExtendedXMP") in {(g, n) for g, n, _ in tags(src)}
    notes, _ = roundtrip(src, tmp_path / "out" / "a.jpg")
    assert missing(src, tmp_path / "out" / "a.jpg") == set(), notes
    assert any(g.startswith("ICC") for g, _, _ in tags(tmp_path / "out" / "a.jpg"))


def test_upright_pixels_say_so_in_exif_and_xmp(tmp_path):
    src = tmp_path / "o.jpg"
    Image.fromarray(photo(24, 32)).save(src, quality=95)
    exiftool(src, "-EXIF:Orientation#=6", "-XMP-tiff:Orientation#=6", "-EXIF:Make=AcmeCam",
             "-EXIF:ExifImageWidth=32", "-EXIF:ExifImageHeight=24", "-XMP-dc:Title=turned")  # fmt: skip
    out = tmp_path / "out" / "o.png"  # into another format: the carrier's blocks, then the fix
    notes, dec = roundtrip(src, out)
    assert dec.pixels.shape[:2] == (32, 24)
    got = tags(out)
    orientations = {(g, v) for g, n, v in got if n == "Orientation"}
    assert orientations == {("IFD0", "1"), ("XMP-tiff", "1")}, orientations
    dims = {n: v for g, n, v in got if n in ("ExifImageWidth", "ExifImageHeight")}
    assert dims == {"ExifImageWidth": "24", "ExifImageHeight": "32"}
    assert ("IFD0", "Make", "AcmeCam") in got and ("XMP-dc", "Title", "turned") in got
    with Image.open(out) as im:
        assert im.size == (24, 32)
    # the same into a JPEG: its own segments are copied, then fixed
    out = tmp_path / "out" / "o.jpg"
    notes, _ = roundtrip(src, out)
    got = tags(out)
    assert {(g, v) for g, n, v in got if n == "Orientation"} == {("IFD0", "1"), ("XMP-tiff", "1")}
    changed = ("Orientation", "ExifImageWidth", "ExifImageHeight", "XMPToolkit")  # XMP is rewritten: a note says so
    assert missing(src, out) <= {t for t in tags(src) if t[1] in changed}
    assert any("orientation set to upright in EXIF and XMP" in n for n in notes), notes


def test_tiff_keeps_exif_gps_iptc_xmp_geotiff_photoshop_and_unknown_tags(tmp_path):
    src = tmp_path / "geo.tif"
    geo = [(33550, 12, 3, (0.5, 0.5, 0.0), True), (33922, 12, 6, (0, 0, 0, 440720.0, 3751320.0, 0), True),
           (34735, 3, 8, (1, 1, 0, 1, 1024, 0, 1, 1), True), (34737, 2, 0, "WGS 84|", True),
           (65000, 4, 2, (7, 9), True)]  # fmt: skip
    tifffile.imwrite(src, photo(), photometric="rgb", compression="zlib", extratags=geo, metadata=None)
    exiftool(src, *[t for t in JPEG_TAGS if not t.startswith("-Comment")], "-Photoshop:URL=https://example.org/a")
    before = tags(src)
    assert any(g == "GPS" for g, _, _ in before) and any(g == "ExifIFD" for g, _, _ in before)
    assert any(g == "Photoshop" for g, _, _ in before) and any(g == "GeoTiff" or "Geo" in n for g, n, _ in before)
    notes, _ = roundtrip(src, tmp_path / "out" / "geo.tif")
    assert missing(src, tmp_path / "out" / "geo.tif") == set(), notes
    with tifffile.TiffFile(tmp_path / "out" / "geo.tif") as tf:
        assert tf.pages[0].tags[65000].value == (7, 9)
        assert tf.pages[0].tags[33922].value == (0, 0, 0, 440720.0, 3751320.0, 0)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_keeps_colour_chunks_time_text_languages_exif_and_xmp(tmp_path):
    src = tmp_path / "c.png"
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    info.add(b"sRGB", b"\x00")
    info.add(b"sBIT", b"\x05\x06\x05")
    info.add(b"bKGD", struct.pack(">3H", 10, 20, 30))
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9))
    info.add_itxt("Title", "Le port", lang="fr", tkey="Titre")
    info.add_text("Author", "A. Photographer")
    info.add(b"prVt", b"private, safe to copy")
    Image.fromarray(photo()).save(src, pnginfo=info)
    exiftool(src, "-EXIF:Make=AcmeCam", "-XMP-dc:Title=Evening")
    notes, _ = roundtrip(src, tmp_path / "out" / "c.png")
    assert missing(src, tmp_path / "out" / "c.png") == set(), notes
    data = (tmp_path / "out" / "c.png").read_bytes()
    assert b"prVt" in data and data.index(b"gAMA") < data.index(b"IDAT")


def test_animations_keep_their_metadata_and_a_gif_that_plays_once_still_does(tmp_path):
    frames = [Image.fromarray(np.roll(photo(), 3 * k, axis=1)) for k in range(3)]
    exif = Image.Exif()
    exif[0x010F] = "AcmeCam"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>image/webp</dc:format></rdf:Description></rdf:RDF></x:xmpmeta>'  # noqa: E501
    webp = tmp_path / "a.webp"
    frames[0].save(webp, save_all=True, append_images=frames[1:], duration=80, loop=3, lossless=True,
                   icc_profile=srgb(), exif=exif.tobytes(), xmp=xmp)  # fmt: skip
    notes, _ = roundtrip(webp, tmp_path / "out" / "a.webp")
    assert missing(webp, tmp_path / "out" / "a.webp") == set(), notes

    apng = tmp_path / "a.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "three frames")
    info.add(b"gAMA", struct.pack(">I", 45455))
    frames[0].save(apng, save_all=True, append_images=frames[1:], duration=80, loop=2, pnginfo=info,
                   default_image=False)  # fmt: skip
    notes, _ = roundtrip(apng, tmp_path / "out" / "a.png")
    assert missing(apng, tmp_path / "out" / "a.png") == set(), notes

    gif = tmp_path / "once.gif"
    pal = [f.quantize(16) for f in frames]
    pal[0].save(gif, save_all=True, append_images=pal[1:], duration=80, comment=b"plays once")
    with Image.open(gif) as im:
        assert "loop" not in im.info  # no NETSCAPE block: it plays once
    notes, _ = roundtrip(gif, tmp_path / "out" / "once.gif")
    with Image.open(tmp_path / "out" / "once.gif") as im:
        assert "loop" not in im.info and im.info.get("comment") == b"plays once" and im.n_frames == 3
    assert missing(gif, tmp_path / "out" / "once.gif") == set(), notes


def test_a_cmyk_profile_is_not_embedded_in_the_rgb_output_and_the_note_says_so(tmp_path):
    src = tmp_path / "k.jpg"
    Image.fromarray(photo()).convert("CMYK").save(src, quality=95, icc_profile=cmyk_profile())
    exiftool(src, "-EXIF:Make=AcmeCam")
    for out in (tmp_path / "out" / "k.jpg", tmp_path / "out" / "k.tif", tmp_path / "out" / "k.png"):
        notes, _ = roundtrip(src, out)
        assert not any(g.startswith("ICC") for g, _, _ in tags(out)), out
        with Image.open(out) as im:
            assert not im.info.get("icc_profile")
        assert any("CMYK colour profile is not embedded" in n for n in notes), notes
        assert ("IFD0", "Make", "AcmeCam") in tags(out)


def test_a_format_that_cannot_hold_a_block_names_it(tmp_path):
    src = tmp_path / "a.jpg"
    Image.fromarray(photo()).save(src, quality=95)
    exiftool(src, "-EXIF:Make=AcmeCam", "-IPTC:Keywords=harbour", "-XMP-dc:Title=Evening")
    notes, _ = roundtrip(src, tmp_path / "out" / "a.bmp")
    assert any("EXIF, IPTC, XMP metadata not kept (BMP" in n for n in notes), notes
    notes, _ = roundtrip(src, tmp_path / "out" / "a.webp")  # WebP has no IPTC block
    got = tags(tmp_path / "out" / "a.webp")
    assert any("IPTC metadata not kept (WebP" in n for n in notes), notes
    assert ("IFD0", "Make", "AcmeCam") in got and ("XMP-dc", "Title", "Evening") in got


def test_the_cli_carries_metadata_through_the_model(tmp_path):
    ckpt = write_identity_checkpoint(tmp_path / "identity.safetensors")
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "a.jpg"
    Image.fromarray(photo(40, 48)).save(src, quality=92, icc_profile=srgb())
    exiftool(src, *JPEG_TAGS)
    code, out, err = run_cli("deblur", tmp_path / "in", "-o", tmp_path / "out", "--model", ckpt, "--device", "cpu")
    assert code == 0, err
    assert missing(src, tmp_path / "out" / "a.jpg") == set()
