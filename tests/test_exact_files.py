"""Every readable kind of image through the identity checkpoint: the output equals its input bit
for bit where the format is kept, or the record's notes name what changed.

The matrix covers formats x colour modes x bit depths x sample formats x layouts (planar and
contiguous, tiny and odd sizes). Inputs are written, and outputs read back, with other libraries
than the ones under test (Pillow, tifffile, imagecodecs directly). Add a case here for every format
or mode that becomes readable.
"""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
import tifffile
from helpers.cli import write_identity_checkpoint
from PIL import Image, PngImagePlugin

from algnet_cli.api import Deblurrer
from algnet_cli.batch.plan import Job
from algnet_cli.batch.stills import load_image, save_image
from algnet_cli.errors import ImageReadError

RNG = np.random.default_rng(7)
SIZES = [(1, 1), (3, 5), (17, 13)]  # (height, width): tiny and odd


def u8(h, w, c=None):
    return RNG.integers(0, 256, (h, w) if c is None else (h, w, c), dtype=np.uint8)


def u16(h, w, c=None):
    return RNG.integers(0, 65536, (h, w) if c is None else (h, w, c), dtype=np.uint16)


def smooth(h, w, c=3):
    """A smooth image (lossy codecs keep it close)."""
    y, x = np.mgrid[0:h, 0:w]
    base = [(np.sin(x / 5 + k) + np.cos(y / 7 - k)) * 60 + 128 for k in range(c)]
    return np.clip(np.stack(base, -1), 0, 255).astype(np.uint8)


def icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif() -> bytes:
    e = Image.Exif()
    e[0x010F] = "PhoneMaker"
    e[0x0110] = "Model X"
    return e.tobytes()


# -- writing inputs ---------------------------------------------------------------------------


def pil_save(arr, mode=None, fmt="PNG", **kw):
    def write(path):
        im = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
        im.save(path, format=fmt, **kw)

    return write


def pil_image_save(make, fmt, **kw):
    def write(path):
        make().save(path, format=fmt, **kw)

    return write


def codec_png(arr):
    return lambda path: path.write_bytes(imagecodecs.png_encode(arr))


def tiff(arr, **kw):
    return lambda path: tifffile.imwrite(path, arr, metadata=None, **kw)


def palette_image(h, w, n=12, trns=False):
    def make():
        im = Image.fromarray(RNG.integers(0, n, (h, w), dtype=np.uint8), "P")
        im.putpalette(RNG.integers(0, 256, n * 3, dtype=np.uint8).tobytes())
        if trns:
            im.info["transparency"] = bytes([0, 128] + [255] * (n - 2))
        return im

    return make


def tiff_palette(h, w):
    cmap = RNG.integers(0, 256, (3, 256), dtype=np.uint16) * 257
    return tiff(RNG.integers(0, 40, (h, w), dtype=np.uint8), photometric="palette", colormap=cmap)


def tiff_pages(path):
    with tifffile.TiffWriter(path) as tw:
        tw.write(u8(9, 7, 3), photometric="rgb", metadata=None)
        tw.write(u16(9, 7), photometric="minisblack", metadata=None)
        tw.write(u8(9, 7, 2), photometric="minisblack", extrasamples=["unassalpha"], metadata=None)


def tiff_tagged(path):
    tifffile.imwrite(path, u16(11, 9, 3), photometric="rgb", metadata=None, resolution=(300, 300),
                     resolutionunit="INCH", datetime="2024:05:06 07:08:09", iccprofile=icc(),
                     extratags=[(271, "s", 0, "ScanMaker", True), (272, "s", 0, "S-900", True)])  # fmt: skip


def animated(fmt, n=3, h=8, w=6, **kw):
    def write(path):
        frames = [Image.fromarray(smooth(h, w) // (i + 1)) for i in range(n)]
        frames[0].save(
            path, format=fmt, save_all=True, append_images=frames[1:], duration=[50, 80, 120][:n], loop=0, **kw
        )

    return write


def jpeg(arr, mode=None, **kw):
    return pil_save(arr, mode, "JPEG", quality=92, **kw)


def motion_photo(path):
    buf = io.BytesIO()
    Image.fromarray(smooth(24, 32)).save(buf, format="JPEG", quality=90, exif=exif())
    path.write_bytes(buf.getvalue() + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)


def png_with_metadata(path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lake at dusk")
    Image.fromarray(u8(10, 12, 3)).save(path, format="PNG", pnginfo=info, icc_profile=icc(), dpi=(150, 150))


def tiff_cases():
    cases = []
    for h, w in SIZES:
        cases += [
            (f"tiff_grey8_{h}x{w}", ".tif", tiff(u8(h, w), photometric="minisblack"), "exact"),
            (
                f"tiff_rgb16_planar_{h}x{w}",
                ".tif",
                tiff(u16(3, h, w), photometric="rgb", planarconfig="separate"),
                "exact",
            ),
        ]
    return cases + [
        ("tiff_rgb8_planar_4wide", ".tif", tiff(u8(3, 50, 4), photometric="rgb", planarconfig="separate"), "exact"),
        ("tiff_rgb8_lzw", ".tif", tiff(u8(9, 8, 3), photometric="rgb", compression="lzw"), "exact"),
        ("tiff_grey16", ".tif", tiff(u16(9, 8), photometric="minisblack"), "exact"),
        ("tiff_grey_alpha_3rows", ".tif", tiff(u8(3, 50, 2), photometric="minisblack", extrasamples=["unassalpha"]), "exact"),
        ("tiff_rgba_unassoc", ".tif", tiff(u8(7, 6, 4), photometric="rgb", extrasamples=["unassalpha"]), "exact"),
        ("tiff_rgba_assoc16", ".tif", tiff(u16(7, 6, 4), photometric="rgb", extrasamples=["assocalpha"]), "exact"),
        ("tiff_rgba_unspecified", ".tif", tiff(u8(7, 6, 4), photometric="rgb", extrasamples=["unspecified"]), "exact"),
        ("tiff_rgba_planar", ".tif", tiff(u8(4, 7, 6), photometric="rgb", planarconfig="separate", extrasamples=["unassalpha"]), "exact"),
        ("tiff_palette", ".tif", tiff_palette(9, 11), "exact"),
        ("tiff_miniswhite8", ".tif", tiff(u8(9, 7), photometric="miniswhite"), "exact"),
        ("tiff_miniswhite16", ".tif", tiff(u16(9, 7), photometric="miniswhite"), "exact"),
        ("tiff_bilevel", ".tif", tiff(RNG.integers(0, 2, (9, 13)).astype(bool), photometric="minisblack"), "exact"),
        ("tiff_bilevel_miniswhite", ".tif", tiff(RNG.integers(0, 2, (9, 13)).astype(bool), photometric="miniswhite"), "exact"),
        ("tiff_int8", ".tif", tiff(RNG.integers(-128, 128, (9, 7), dtype=np.int8), photometric="minisblack"), "exact"),
        ("tiff_int16_rgb", ".tif", tiff(RNG.integers(-32768, 32768, (9, 7, 3), dtype=np.int16), photometric="rgb"), "exact"),
        ("tiff_float16", ".tif", tiff(RNG.random((9, 7, 3)).astype(np.float16), photometric="rgb"), "exact"),
        ("tiff_float32", ".tif", tiff(RNG.random((9, 7, 3)).astype(np.float32), photometric="rgb"), "exact"),
        ("tiff_float32_grey", ".tif", tiff(RNG.random((9, 7)).astype(np.float32), photometric="minisblack"), "exact"),
        ("tiff_float64", ".tif", tiff(RNG.random((9, 7, 3)), photometric="rgb"), "note"),
        ("tiff_cmyk", ".tif", tiff(u8(9, 7, 4), photometric="separated"), "note"),
        ("tiff_int32", ".tif", tiff(RNG.integers(-(2**31), 2**31 - 1, (9, 7), dtype=np.int32), photometric="minisblack"), "refused"),
        ("tiff_uint32", ".tif", tiff(RNG.integers(0, 2**32 - 1, (9, 7), dtype=np.uint32), photometric="minisblack"), "refused"),
        ("tiff_pages", ".tif", tiff_pages, "exact"),
        ("tiff_tagged", ".tif", tiff_tagged, "exact"),
    ]  # fmt: skip


def png_cases():
    cases = []
    for h, w in SIZES:
        cases += [
            (f"png_grey8_{h}x{w}", ".png", pil_save(u8(h, w)), "exact"),
            (f"png_rgba16_{h}x{w}", ".png", codec_png(u16(h, w, 4)), "exact"),
        ]
    return cases + [
        ("png_rgb8", ".png", pil_save(u8(9, 8, 3)), "exact"),
        ("png_rgba8", ".png", pil_save(u8(9, 8, 4)), "exact"),
        ("png_grey_alpha8", ".png", pil_save(u8(9, 8, 2), "LA"), "exact"),
        ("png_grey16", ".png", codec_png(u16(9, 8)), "exact"),
        ("png_grey_alpha16", ".png", codec_png(u16(9, 8, 2)), "exact"),
        ("png_rgb16", ".png", codec_png(u16(9, 8, 3)), "exact"),
        ("png_bilevel", ".png", pil_image_save(lambda: Image.fromarray(u8(9, 13) > 127), "PNG"), "exact"),
        ("png_palette", ".png", pil_image_save(palette_image(9, 11), "PNG"), "exact"),
        ("png_palette_trns", ".png", pil_image_save(palette_image(9, 11, trns=True), "PNG", transparency=bytes([0, 128] + [255] * 10)), "exact"),
        ("png_palette_4bit", ".png", pil_image_save(palette_image(9, 11, n=16), "PNG", bits=4), "exact"),
        ("png_metadata", ".png", png_with_metadata, "exact"),
        ("png_named_jpg", ".jpg", pil_save(u8(9, 8, 3)), "exact"),
        ("apng", ".png", animated("PNG"), "exact"),
    ]  # fmt: skip


def other_cases():
    return [
        ("jpeg_grey", ".jpg", jpeg(smooth(24, 32, 1)[..., 0]), "lossy"),
        ("jpeg_rgb444", ".jpg", jpeg(smooth(24, 32), subsampling=0), "lossy"),
        ("jpeg_rgb420_meta", ".jpg", jpeg(smooth(24, 32), subsampling=2, icc_profile=icc(), exif=exif()), "lossy"),
        ("jpeg_odd", ".jpg", jpeg(smooth(3, 5)), "lossy"),
        ("jpeg_cmyk", ".jpg", jpeg(smooth(24, 32, 4), "CMYK"), "note"),
        ("jpeg_motion_photo", ".jpg", motion_photo, "lossy"),
        ("jpeg_lossless", ".jpg", lambda p: p.write_bytes(imagecodecs.jpeg8_encode(u8(9, 8, 3), lossless=True)), "exact"),
        ("jpeg_12bit", ".jpg", lambda p: p.write_bytes(imagecodecs.jpeg8_encode((u16(9, 8, 3) >> 4), bitspersample=12)), "refused"),
        ("webp_lossless_rgb", ".webp", pil_save(u8(9, 8, 3), fmt="WEBP", lossless=True), "exact"),
        ("webp_lossless_rgba", ".webp", pil_save(u8(9, 8, 4), fmt="WEBP", lossless=True, exact=True), "exact"),
        ("webp_lossy", ".webp", pil_save(smooth(24, 32), fmt="WEBP", quality=95), "lossy"),
        ("webp_animated_lossless", ".webp", animated("WEBP", lossless=True), "exact"),
        ("bmp_rgb", ".bmp", pil_save(u8(9, 7, 3), fmt="BMP"), "exact"),
        ("bmp_grey", ".bmp", pil_save(u8(9, 7), fmt="BMP"), "exact"),
        ("bmp_palette", ".bmp", pil_image_save(palette_image(9, 11), "BMP"), "exact"),
        ("bmp_1x1", ".bmp", pil_save(u8(1, 1, 3), fmt="BMP"), "exact"),
        ("gif_palette", ".gif", pil_image_save(palette_image(9, 11), "GIF"), "exact"),
        ("gif_transparent", ".gif", pil_image_save(palette_image(9, 11), "GIF", transparency=3), "exact"),
        ("gif_animated", ".gif", animated("GIF"), "exact"),
    ]  # fmt: skip


CASES = tiff_cases() + png_cases() + other_cases()


# -- reading outputs back, independently ------------------------------------------------------


def decoded(path):
    """(pixels per frame, structure, metadata) as other libraries see the file."""
    head = path.read_bytes()[:4]
    if head[:2] in (b"II", b"MM"):
        return _tiff_view(path)
    with Image.open(path) as im:
        n = getattr(im, "n_frames", 1)
        structure = (im.format, im.mode, im.size, n)
        frames = []
        for i in range(n):
            im.seek(i)
            if im.format == "PNG" and im.mode in ("I;16", "I", "RGB", "RGBA", "LA") and n == 1:
                frames.append(imagecodecs.png_decode(path.read_bytes()))
            else:
                frames.append(np.asarray(im.convert("RGBA" if im.mode in ("P", "RGBA", "LA", "PA") else im.mode)))
        meta = (
            bool(im.info.get("icc_profile")),
            dict(im.getexif()).get(0x010F),
            im.info.get("dpi"),
            im.info.get("parameters"),
        )
    return frames, structure, meta


def _tiff_view(path):
    with tifffile.TiffFile(path) as tf:
        frames, structure, meta = [], [], []
        for p in tf.pages:
            frames.append(p.asarray())
            structure.append((p.photometric, p.planarconfig, p.extrasamples, p.sampleformat, p.bitspersample, p.shape))
            meta.append(tuple(p.tags[c].value if c in p.tags else None for c in (271, 272, 306, 282, 283, 296, 34675)))
    return frames, structure, meta


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    path = write_identity_checkpoint(tmp_path_factory.mktemp("ckpt") / "identity.safetensors")
    return Deblurrer(str(path), device="cpu", quiet=True)


def roundtrip(identity, src, dst):
    job = Job(src, dst)
    dec = load_image(job)
    outs = [identity.deblur(f) for f in dec.opened.frames]
    notes = save_image(job, outs if len(outs) > 1 else outs[0], dec)
    return dec.notes + notes


@pytest.mark.parametrize("name, suffix, write, expect", CASES, ids=[c[0] for c in CASES])
def test_identity_round_trip_is_exact_or_noted(tmp_path, identity, name, suffix, write, expect):
    src, dst = tmp_path / f"{name}{suffix}", tmp_path / "out" / f"{name}{suffix}"
    write(src)
    if expect == "refused":
        with pytest.raises(ImageReadError) as e:
            roundtrip(identity, src, dst)
        assert str(src) in str(e.value) and "not supported" in str(e.value)
        assert not dst.exists()
        return
    notes = roundtrip(identity, src, dst)
    (fa, sa, ma), (fb, sb, mb) = decoded(src), decoded(dst)
    assert sa == sb or notes, f"structure changed without a note: {sa} -> {sb}"
    assert ma == mb or notes, f"metadata changed without a note: {ma} -> {mb}"
    if expect == "lossy":
        assert sa == sb and ma == mb
        assert all(psnr(a, b) > 36 for a, b in zip(fa, fb))
        return
    same = len(fa) == len(fb) and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(fa, fb))
    if expect == "exact":
        assert same, f"pixels changed (notes: {notes})"
        assert sa == sb and ma == mb, f"{sa} -> {sb}, {ma} -> {mb}"
    else:
        assert notes, "a change the output cannot avoid must be named"


def test_a_motion_photos_video_is_kept_after_the_deblurred_image(tmp_path, identity):
    motion_photo(tmp_path / "m.jpg")
    notes = roundtrip(identity, tmp_path / "m.jpg", tmp_path / "out" / "m.jpg")
    tail = (tmp_path / "m.jpg").read_bytes()[-1036:]  # the appended video, as motion_photo writes it
    assert (tmp_path / "out" / "m.jpg").read_bytes().endswith(tail)
    assert any("after the JPEG image" in n for n in notes)


def test_conversions_name_what_the_output_cannot_hold(tmp_path, identity):
    tifffile.imwrite(tmp_path / "a.tif", u16(9, 8, 4), photometric="rgb", extrasamples=["unassalpha"])
    job = Job(tmp_path / "a.tif", tmp_path / "a.jpg")
    dec = load_image(job)
    notes = save_image(job, identity.deblur(dec.pixels), dec)
    assert any("8-bit" in n for n in notes) and any("alpha" in n for n in notes)
    pil_save(u8(9, 8, 3), fmt="WEBP", lossless=True)(tmp_path / "l.webp")
    job = Job(tmp_path / "l.webp", tmp_path / "l.webp.jpg")
    dec = load_image(job)
    assert dec.opened.description.lossless
