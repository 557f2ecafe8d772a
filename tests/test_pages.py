"""Pixels, page by page: each page, frame and sample kind read as the file means it, checked with
an independent reader (tifffile, Pillow)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from algnet_cli.batch.plan import Job
from algnet_cli.batch.stills import load_image, save_image

RNG = np.random.default_rng(3)


def roundtrip(src, dst):
    job = Job(src, dst)
    dec = load_image(job)
    frames = dec.opened.frames
    return dec, dec.notes + save_image(job, frames if len(frames) > 1 else frames[0], dec)


def test_every_tiff_page_is_turned_upright_by_its_own_orientation(tmp_path):
    pages = [RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8) for _ in range(3)]
    src = tmp_path / "p.tif"
    with tifffile.TiffWriter(src) as tw:
        for page, orientation in zip(pages, (1, 3, 6)):
            tw.write(page, photometric="rgb", extratags=[(274, 3, 1, orientation, True)], metadata=None)
    dec, _ = roundtrip(src, tmp_path / "out" / "p.tif")
    upright = [pages[0], pages[1][::-1, ::-1], np.swapaxes(pages[2], 0, 1)[:, ::-1]]
    for got, want in zip(dec.opened.frames, upright):
        assert np.array_equal(got, want)
    with tifffile.TiffFile(tmp_path / "out" / "p.tif") as tf:
        assert len(tf.pages) == 3
        for page, want in zip(tf.pages, upright):
            assert np.array_equal(page.asarray(), want)
            assert 274 not in page.tags or page.tags[274].value == 1


def test_a_grey_png_with_a_transparent_level_keeps_it(tmp_path):
    from PIL import Image

    grey = RNG.integers(0, 256, (7, 9), dtype=np.uint8)
    grey[grey == 77] = 78
    grey[2:4, 3:6] = 77
    Image.fromarray(grey).save(tmp_path / "g.png", transparency=77)
    dec, notes = roundtrip(tmp_path / "g.png", tmp_path / "out" / "g.png")
    assert dec.pixels.shape == (7, 9, 2) and (dec.pixels[..., 1] == 0).sum() == 6
    with Image.open(tmp_path / "out" / "g.png") as im:
        assert im.mode == "L" and im.info.get("transparency") == 77
        assert np.array_equal(np.asarray(im.convert("LA"))[..., 1], np.where(grey == 77, 0, 255))
    roundtrip(tmp_path / "g.png", tmp_path / "out" / "g.webp")  # into a format with an alpha channel: kept
    with Image.open(tmp_path / "out" / "g.webp") as im:
        assert np.array_equal(np.asarray(im.convert("RGBA"))[..., 3], np.where(grey == 77, 0, 255))


def bmp16(path, words: np.ndarray, masks=None):
    """A 16-bit BMP, bottom-up: 5-5-5 (no masks) or with bit-field masks (5-6-5)."""
    import struct

    h, w = words.shape
    row_bytes = (w * 2 + 3) // 4 * 4
    rows = b"".join(words[y].astype("<u2").tobytes().ljust(row_bytes, b"\0") for y in range(h - 1, -1, -1))
    extra = struct.pack("<III", *masks) if masks else b""
    offset = 14 + 40 + len(extra)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3 if masks else 0, len(rows), 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + extra + rows)


def test_16_bit_bmps_are_scaled_by_bit_replication_and_white_stays_white(tmp_path):
    words = RNG.integers(0, 1 << 16, (5, 6), dtype=np.uint16)
    words[0, 0] = 0xFFFF
    bmp16(tmp_path / "565.bmp", words, (0xF800, 0x07E0, 0x001F))
    bmp16(tmp_path / "555.bmp", words & 0x7FFF)
    rep5 = lambda v: (v << 3) | (v >> 2)  # noqa: E731 - bit replication, by hand
    rep6 = lambda v: (v << 2) | (v >> 4)  # noqa: E731
    w = words.astype(np.int64)
    want565 = np.stack([rep5(w >> 11), rep6((w >> 5) & 63), rep5(w & 31)], -1)
    want555 = np.stack([rep5((w >> 10) & 31), rep5((w >> 5) & 31), rep5(w & 31)], -1)
    for name, want in (("565.bmp", want565), ("555.bmp", want555)):
        dec, notes = roundtrip(tmp_path / name, tmp_path / "out" / name)
        assert np.array_equal(dec.pixels, want), name
        assert dec.pixels[0, 0].tolist() == ([255, 255, 255] if name == "565.bmp" else want555[0, 0].tolist())
        assert any("16-bit" in n for n in notes)
    assert want565[0, 0].tolist() == [255, 255, 255]


def test_a_bmp_with_an_alpha_mask_keeps_its_alpha(tmp_path):
    import imagecodecs
    from PIL import Image

    rgba = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    (tmp_path / "a.bmp").write_bytes(imagecodecs.bmp_encode(rgba))  # a version-4 header with an alpha mask
    with Image.open(tmp_path / "a.bmp") as im:
        assert im.mode == "RGBA"
    dec, notes = roundtrip(tmp_path / "a.bmp", tmp_path / "out" / "a.bmp")
    assert not any("alpha" in n for n in notes), notes
    with Image.open(tmp_path / "out" / "a.bmp") as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im), rgba)


def test_format_is_honoured_whatever_the_input_is_named(tmp_path):
    from helpers.cli import run_cli
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "in" / "x.png", format="JPEG")
    code, _, err = run_cli("deblur", tmp_path / "in", "-o", tmp_path / "out", "--format", "png", "--dry-run")
    assert code == 0, err
    from algnet_cli.batch.plan import Job as J

    job = J(tmp_path / "in" / "x.png", tmp_path / "out" / "x.png", fmt="png")
    dec = load_image(job)
    save_image(job, dec.pixels, dec)
    with Image.open(tmp_path / "out" / "x.png") as im:
        assert im.format == "PNG"
    job = J(tmp_path / "in" / "x.png", tmp_path / "out2" / "x.png")  # --format keep: the input's own
    save_image(job, dec.pixels, dec)
    with Image.open(tmp_path / "out2" / "x.png") as im:
        assert im.format == "JPEG"


def test_a_dng_is_refused_as_a_raw_file(tmp_path):
    import pytest

    from algnet_cli.errors import ImageReadError

    tifffile.imwrite(tmp_path / "r.tif", RNG.integers(0, 256, (25, 34, 3), dtype=np.uint8), photometric="rgb",
                     extratags=[(50706, 1, 4, (1, 4, 0, 0), True)])  # fmt: skip
    with pytest.raises(ImageReadError) as e:
        load_image(Job(tmp_path / "r.tif", tmp_path / "out" / "r.tif"))
    assert "DNG raw file" in str(e.value) and str(tmp_path / "r.tif") in str(e.value)


def test_an_mpo_keeps_its_second_image_and_says_what_happened(tmp_path):
    from PIL import Image

    a = Image.fromarray(RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    b = Image.fromarray(RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    a.save(tmp_path / "s.jpg", format="MPO", save_all=True, append_images=[b])
    with Image.open(tmp_path / "s.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
        second = im.mpinfo[0xB002][1]["DataOffset"]
    data = (tmp_path / "s.jpg").read_bytes()
    dec, notes = roundtrip(tmp_path / "s.jpg", tmp_path / "out" / "s.jpg")
    assert any("MPO" in n and "further images" in n for n in notes) and not any("motion photo" in n for n in notes)
    out = (tmp_path / "out" / "s.jpg").read_bytes()
    tail = data[data.index(b"MPF\x00") + 4 + second :]  # MPF offsets count from the MPF header
    assert tail.startswith(b"\xff\xd8") and out.endswith(tail)  # the second image's bytes, unchanged
    with Image.open(tmp_path / "out" / "s.jpg") as im:
        assert im.format == "JPEG"  # no stale MPF index that points into the wrong bytes


def test_nan_in_an_input_is_named_as_the_inputs(tmp_path):
    import pytest

    from algnet_cli.errors import ImageReadError

    arr = RNG.random((6, 8)).astype(np.float32)
    arr[2, 3] = np.nan
    arr[4, 4] = np.inf
    tifffile.imwrite(tmp_path / "f.tif", arr)
    with pytest.raises(ImageReadError) as e:
        load_image(Job(tmp_path / "f.tif", tmp_path / "out" / "f.tif"))
    assert str(tmp_path / "f.tif") in str(e.value) and "the file holds 2 NaN or infinite samples" in str(e.value)


_PEAK = """
import resource, sys
from pathlib import Path
from algnet_cli.batch.plan import Job
from algnet_cli.batch.stills import load_image, save_image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dec = load_image(Job(src, dst))
save_image(Job(src, dst), dec.pixels, dec)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_long_tail_after_a_small_jpeg_is_never_held_in_memory(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "t.jpg", quality=90)
    head = (tmp_path / "t.jpg").read_bytes()
    peaks = {}
    for name, tail in (("small", 1 << 13), ("large", 256 << 20)):
        with open(tmp_path / f"{name}.jpg", "wb") as f:
            f.write(head)
            f.write(b"\x01" * 4096)  # data, not zero padding
            f.seek(len(head) + tail)
            f.write(b"end")
        run = subprocess.run([sys.executable, "-c", _PEAK, tmp_path / f"{name}.jpg", tmp_path / "out" / f"{name}.jpg"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        peaks[name] = int(run.stdout.split()[-1]) * 1024
        out = tmp_path / "out" / f"{name}.jpg"
        assert out.stat().st_size > tail and out.read_bytes()[-3:] == b"end"
    assert peaks["large"] - peaks["small"] < 64 << 20, peaks  # the 256 MiB tail is streamed, not read


# -- folders ----------------------------------------------------------------------------------


def _photo_tree(tmp_path):
    from PIL import Image

    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for path in (root / "top.png", root / "a" / "x.png", tmp_path / "elsewhere" / "y.png"):
        Image.fromarray(RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "a" / "back").symlink_to(root, target_is_directory=True)  # a loop
    return root


def test_linked_folders_are_followed_under_r_and_loops_named(tmp_path):
    from helpers.cli import run_cli

    root = _photo_tree(tmp_path)
    code, out, err = run_cli("deblur", root, "-r", "-o", tmp_path / "out", "--dry-run")
    assert code == 0, err
    assert str(root / "linked" / "y.png") in out  # the linked folder is walked
    assert str(root / "a" / "back") in out and "loop" in out
    assert out.count("x.png ->") == 1 and out.count("top.png ->") == 1  # the loop walks nothing twice
    code, out, err = run_cli("triage", root, "-r")
    assert code == 0, err
    assert "y.png" in out and "loop" in err


@pytest.mark.parametrize("how", ["mode 000", "scandir refuses"])
def test_an_unreadable_subfolder_is_a_failure_that_names_it(tmp_path, monkeypatch, how):
    """A folder that cannot be listed: for real (mode 000, as an ordinary user, root included through
    ``nobody``), and as a file system that refuses whoever asks (os.scandir raising)."""
    import os

    from helpers.cli import run_cli
    from helpers.users import ordinary_user

    with ordinary_user(tmp_path) as home:
        root = _photo_tree(home)
        locked = root / "a"
        real_scandir = os.scandir

        def scandir(path="."):
            if os.path.abspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        if how == "mode 000":
            locked.chmod(0)
        else:
            monkeypatch.setattr(os, "scandir", scandir)
        try:
            for args in (("deblur", root, "-r", "-o", home / "out", "--dry-run"), ("triage", root, "-r")):
                code, out, err = run_cli(*args)
                assert code == 1, (args, out, err)
                text = out + err
                assert str(locked) in text and "cannot be read" in text and "Permission denied" in text
                assert "top.png" in out  # the rest go on
        finally:
            locked.chmod(0o755)
            monkeypatch.undo()


# -- codings that change, or are kept ---------------------------------------------------------


def test_codings_are_kept_or_named(tmp_path):
    import struct

    from PIL import Image

    rgb = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", quality=90, progressive=True)
    _, notes = roundtrip(tmp_path / "p.jpg", tmp_path / "out" / "p.jpg")
    with Image.open(tmp_path / "out" / "p.jpg") as im:
        assert im.info.get("progressive") or im.info.get("progression")  # kept progressive

    grey16 = RNG.integers(0, 1 << 16, (40, 56), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", grey16, tile=(16, 32), compression="zlib", predictor=2)
    _, notes = roundtrip(tmp_path / "t.tif", tmp_path / "out" / "t.tif")
    with tifffile.TiffFile(tmp_path / "out" / "t.tif") as tf:
        page = tf.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (16, 32) and int(page.predictor) == 2
        assert np.array_equal(page.asarray(), grey16)

    import png  # pypng writes Adam7-interlaced PNGs

    with open(tmp_path / "i.png", "wb") as f:
        png.Writer(48, 32, greyscale=False, interlace=True).write(f, rgb.reshape(32, -1).tolist())
    assert (tmp_path / "i.png").read_bytes()[28] == 1
    dec, notes = roundtrip(tmp_path / "i.png", tmp_path / "out" / "i.png")
    assert np.array_equal(dec.pixels, rgb) and any("interlaced PNG" in n for n in notes), notes

    # an RLE8 BMP: each row one run of its value, then end of line; end of bitmap
    w, h = 6, 3
    rows = b"".join(bytes([w, 10 * (y + 1), 0, 0]) for y in range(h)) + b"\x00\x01"
    pal = b"".join(bytes([v, v, v, 0]) for v in range(256))
    off = 14 + 40 + len(pal)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    (tmp_path / "r.bmp").write_bytes(b"BM" + struct.pack("<IHHI", off + len(rows), 0, 0, off) + info + pal + rows)
    dec, notes = roundtrip(tmp_path / "r.bmp", tmp_path / "out" / "r.bmp")
    with Image.open(tmp_path / "r.bmp") as im:
        assert np.array_equal(np.asarray(im.convert("L")), np.repeat([[30], [20], [10]], w, axis=1))
    assert any("RLE8-compressed BMP written uncompressed" in n for n in notes), notes

    bw = (RNG.random((9, 13)) > 0.5).astype(np.uint8) * 255
    Image.fromarray(bw).convert("1").save(tmp_path / "b.bmp")
    _, notes = roundtrip(tmp_path / "b.bmp", tmp_path / "out" / "b.bmp")
    with Image.open(tmp_path / "out" / "b.bmp") as im:
        assert im.mode == "1" and np.array_equal(np.asarray(im.convert("L")), bw)
    assert not any("bit BMP" in n for n in notes), notes
