"""Hostile and unusual inputs: nothing stops the batch, nothing is lost, nothing is silently wrong."""

import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from helpers.cli import run_deblur, run_deblur_process, write_tiny_checkpoint
from PIL import Image
from skimage import data

from algnet_cli.batch import Job, clean_stale_temps, discover
from algnet_cli.errors import ImageReadError, ImageWriteError
from algnet_cli.fileio import temp_prefix
from algnet_cli.images import read_image, write_image

RGB = data.astronaut()[100:140, 150:206]  # 40 x 56


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _png(path, pixels: np.ndarray, colour_type: int, depth: int) -> None:
    """A PNG written chunk by chunk (OpenCV and Pillow cannot write 16-bit grey + alpha)."""
    h, w = pixels.shape[:2]
    raw = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).tobytes()
    rows = b"".join(b"\x00" + raw[i * len(raw) // h : (i + 1) * len(raw) // h] for i in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def _patch_tiff_size(path, side: int) -> None:
    """Make a small TIFF's header claim side x side pixels (tags 256 and 257)."""
    b = bytearray(path.read_bytes())
    ifd = struct.unpack("<I", b[4:8])[0]
    for i in range(struct.unpack("<H", b[ifd : ifd + 2])[0]):
        e = ifd + 2 + 12 * i
        tag, typ = struct.unpack("<HH", b[e : e + 4])
        if tag in (256, 257):
            b[e + 8 : e + 12] = struct.pack("<HH", side, 0) if typ == 3 else struct.pack("<I", side)
    path.write_bytes(bytes(b))


def _jpeg_claiming(path, side: int) -> None:
    Image.fromarray(RGB).save(path, quality=90)
    b = bytearray(path.read_bytes())
    sof = b.index(b"\xff\xc0")
    b[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(b))


def _png_claiming(path, side: int) -> None:
    _png(path, RGB[:2, :2], 2, 8)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", side, side)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))


def make_hostile_folder(root):
    """Good files of unusual kinds, and every hostile kind; returns (good names, bad names)."""
    root.mkdir()
    good = {}
    Image.fromarray(RGB).save(root / "a_plain.png")
    good["a_plain.png"] = ((40, 56, 3), np.uint8)
    for comp in ("lzw", "deflate", "jpeg"):
        tifffile.imwrite(root / f"b_{comp}.tif", RGB, photometric="rgb", compression=comp)
        good[f"b_{comp}.tif"] = ((40, 56, 3), np.uint8)
    cv2.imwrite(str(root / "b_opencv.tif"), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))  # LZW, as OpenCV writes it
    good["b_opencv.tif"] = ((40, 56, 3), np.uint8)
    Image.fromarray(RGB).save(root / "b_pillow.tif", compression="tiff_lzw")
    good["b_pillow.tif"] = ((40, 56, 3), np.uint8)
    grey, alpha = RGB[..., 1], np.linspace(0, 255, 40 * 56).reshape(40, 56).astype(np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), mode="LA").save(root / "c_grey_alpha8.png")
    good["c_grey_alpha8.png"] = ((40, 56, 2), np.uint8)
    _png(root / "c_grey_alpha16.png", np.dstack([grey, alpha]).astype(np.uint16) * 257, 4, 16)
    good["c_grey_alpha16.png"] = ((40, 56, 2), np.uint16)
    cmy = 255 - RGB
    tifffile.imwrite(root / "d_cmyk.tif", np.dstack([cmy, np.zeros((40, 56), np.uint8)]), photometric="separated")
    good["d_cmyk.tif"] = ((40, 56, 3), np.uint8)
    tifffile.imwrite(root / "e_float.tif", (RGB / 255.0 * 2 - 0.5).astype(np.float32), photometric="rgb")
    good["e_float.tif"] = ((40, 56, 3), np.float32)

    bad = {}
    _png_claiming(root / "x_bomb.png", 60000)
    bad["x_bomb.png"] = "60000x60000"
    _jpeg_claiming(root / "x_bomb.jpg", 60000)
    bad["x_bomb.jpg"] = "60000x60000"
    tifffile.imwrite(root / "x_bomb.tif", np.zeros((256, 256), np.uint8), tile=(256, 256))
    _patch_tiff_size(root / "x_bomb.tif", 60000)
    bad["x_bomb.tif"] = "60000x60000"
    _png_claiming(root / "y_pages_bomb.png", 50000)
    bad["y_pages_bomb.png"] = "50000x50000"
    os.symlink(root / "nowhere.png", root / "z_broken.png")
    bad["z_broken.png"] = "broken symbolic link"
    os.symlink(root / "z_loop.png", root / "z_loop.png")
    bad["z_loop.png"] = "symbolic link loop"
    os.mkfifo(root / "z_fifo.png")
    bad["z_fifo.png"] = "not a regular file (a FIFO)"
    (root / "z_empty.png").write_bytes(b"")
    bad["z_empty.png"] = "empty file"
    return good, bad


@pytest.mark.slow
def test_a_hostile_folder_names_every_bad_file_and_writes_every_good_one(tmp_path, checkpoint):
    src, out = tmp_path / "in", tmp_path / "out"
    good, bad = make_hostile_folder(src)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # a process of its own: its peak memory is measured
    r = run_deblur_process(src, "-o", out, "--model", checkpoint, "--device", "cpu", "--quiet")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    for name, (shape, dtype) in good.items():
        img = read_image(out / name)
        assert img.shape == shape and img.dtype == dtype, name
    record = json.loads((out / "algnet-run.json").read_text())
    by_name = {os.path.basename(f["input"]): f for f in record["files"]}
    for name, reason in bad.items():
        assert by_name[name]["status"] == "failed" and reason in by_name[name]["error"], name
        line = next(line for line in r.stderr.splitlines() if name in line and "failed" in line)
        assert reason in line
        assert not (out / name).exists()
    assert all(by_name[name]["status"] == "done" for name in good)
    # a 60000 x 60000 header decoded would need gigabytes; the whole run stays small
    assert max(peak_mib, before / 1024) < 2048
    # grey + alpha stays grey (two channels, not RGBA with R != G != B)
    assert read_image(out / "c_grey_alpha8.png").shape[2] == 2
    notes = by_name["d_cmyk.tif"].get("notes", [])
    assert any("CMYK converted to RGB" in n for n in notes) and "CMYK" not in r.stderr  # -q: errors only
    assert any("clipped" in n for n in by_name["e_float.tif"].get("notes", []))
    # the CMYK file is read as the RGB it encodes (not as RGBA with K for alpha)
    cmyk_in = read_image(src / "d_cmyk.tif")
    assert cmyk_in.shape == (40, 56, 3) and np.abs(cmyk_in.astype(int) - RGB).max() <= 1
    # 16-bit grey + alpha read back as two 16-bit channels, alpha kept exactly
    ga16 = read_image(out / "c_grey_alpha16.png")
    assert ga16.dtype == np.uint16 and np.array_equal(ga16[..., 1], read_image(src / "c_grey_alpha16.png")[..., 1])


def test_dry_run_says_why_a_file_would_fail(tmp_path, checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    _png_claiming(src / "bomb.png", 60000)
    tifffile.imwrite(src / "float.tif", np.random.rand(40, 56, 3).astype(np.float32), photometric="rgb")
    r = run_deblur(src, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu", "--dry-run")
    assert r.returncode == 1, r.stderr  # as the run would: an input would fail
    bomb = next(line for line in r.stdout.splitlines() if "bomb.png" in line)
    assert "would fail" in bomb and "60000x60000" in bomb and "--max-megapixels" in bomb
    flt = next(line for line in r.stdout.splitlines() if "float.tif" in line)
    assert "56x40" in flt and "unreadable" not in flt and "fail" not in flt


def test_the_decoding_limit_is_an_option(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((1200, 1000, 3), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match=r"1000x1200 pixels \(1.2 MP\), over the decoding limit of 1 MP"):
        read_image(path, max_pixels=1_000_000)
    assert read_image(path, max_pixels=2_000_000).shape == (1200, 1000, 3)
    assert read_image(path, max_pixels=0).shape == (1200, 1000, 3)  # no limit


def test_an_unwritable_format_fails_before_the_model_and_the_batch_goes_on(tmp_path, checkpoint):
    odd, png, jfif = tmp_path / "one.pgm", tmp_path / "two.png", tmp_path / "three.jfif"
    cv2.imwrite(str(odd), RGB[..., 0])  # a format algnet neither reads nor writes: --format would not help
    Image.fromarray(RGB).save(png)
    Image.fromarray(RGB).save(jfif, format="JPEG")  # read, but not a suffix the tool writes: --format helps
    out = tmp_path / "out"
    r = run_deblur(odd, png, jfif, "-o", out, "--model", checkpoint, "--device", "cpu", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    pgm = next(line for line in r.stderr.splitlines() if "one.pgm" in line)
    assert "PNM/PGM/PPM" in pgm and "algnet reads PNG" in pgm and "--format" not in pgm
    assert "cannot write .jfif images; add --format png" in r.stderr
    assert (out / "two.png").exists()
    assert json.loads((out / "algnet-run.json").read_text())["files"][0]["status"] == "failed"
    r = run_deblur(jfif, "-o", out, "--model", checkpoint, "--device", "cpu", "-q", "--format", "png")
    assert r.returncode == 0, r.stderr  # the hint works
    assert Image.open(out / "three.png").format == "PNG"
    with pytest.raises(ImageWriteError, match="cannot write .pgm"):
        write_image(tmp_path / "x.pgm", RGB)


def test_multi_page_tiffs_and_animations_keep_every_frame(tmp_path, checkpoint):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    pages = np.stack([RGB, 255 - RGB, RGB // 2])
    tifffile.imwrite(src / "pages.tif", pages, photometric="rgb")
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    frames[0].save(src / "anim.webp", save_all=True, append_images=frames[1:], duration=[120, 250], loop=3)
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=[80, 160], loop=0)
    r = run_deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    with tifffile.TiffFile(out / "pages.tif") as tf:
        assert len(tf.pages) == 3 and tf.pages[0].shape == (40, 56, 3)
    for name, durations, loop in (("anim.webp", [120, 250], 3), ("anim.gif", [80, 160], 0)):
        with Image.open(out / name) as im:
            assert im.n_frames == 2 and im.size == (56, 40), name
            assert int(im.info.get("loop", 0)) == loop, name
            got = []
            for i in range(im.n_frames):
                im.seek(i)
                im.load()  # WebP sets a frame's duration when it is decoded
                got.append(im.info["duration"])
            assert got == durations, name
    record = json.loads((out / "algnet-run.json").read_text())
    notes = {os.path.basename(f["input"]): f.get("notes", []) for f in record["files"]}
    assert any("3 pages" in n for n in notes["pages.tif"]) and any("2 frames" in n for n in notes["anim.webp"])
    r = run_deblur(src / "pages.tif", "-o", tmp_path / "flat.png", "--model", checkpoint, "-q")
    assert r.returncode == 1 and "cannot go into one .png file" in r.stderr


def test_any_per_file_error_is_that_files_failure(tmp_path, monkeypatch):
    """An exception of an unexpected kind (KeyError, MemoryError) in one file names it; the rest run."""
    from algnet_cli.batch import OutputOptions, run_images, stills

    jobs = [Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.png") for i in range(4)]

    def load(job, max_pixels=None, skip_sharp=False):
        if job.src.name == "1.png":
            raise MemoryError()
        if job.src.name == "2.png":
            raise KeyError("a decoder's own surprise")
        from algnet_cli.images import Opened, describe_array

        pixels = np.zeros((2, 2, 3), np.uint8)
        return stills.Decoded(Opened([pixels], describe_array(pixels)))

    written = []

    def save(job, out, decoded, quality=95):
        if job.src.name == "3.png":
            raise KeyError(".gif")
        written.append(job.src.name)
        return []

    class Identity:
        def run(self, imgs):
            from algnet_cli.runner import RunReport

            return imgs, RunReport()

        def frames_per_batch(self, h, w):
            return 1

    monkeypatch.setattr(stills, "load_image", load)
    monkeypatch.setattr(stills, "save_image", save)
    results = run_images(jobs, Identity(), OutputOptions(tmp_path / "out"))
    status = {os.path.basename(r.input): r for r in results}
    assert [os.path.basename(r.input) for r in results] == ["0.png", "1.png", "2.png", "3.png"]
    assert written == ["0.png"]
    assert status["1.png"].status == "failed" and "out of memory" in status["1.png"].error
    assert "1.png" in status["1.png"].error
    assert status["2.png"].status == "failed" and "KeyError" in status["2.png"].error
    assert status["3.png"].status == "failed" and "could not write" in status["3.png"].error


def test_a_second_run_keeps_a_live_runs_temporaries(tmp_path):
    """Only temporaries whose owner process is gone are stale; a live owner's are left alone."""
    out = tmp_path / "out"
    out.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = temp_prefix()
        live = out / (mine.replace(f"~{os.getpid()}~", f"~{owner.pid}~") + "abc.mp4")
        live.write_bytes(b"a video being written")
        legacy_old = out / ".algnet-tmp-abc123.png"
        legacy_old.write_bytes(b"x")
        os.utime(legacy_old, (time.time() - 3 * 86400,) * 2)
        legacy_new = out / ".algnet-tmp-def456.png"
        legacy_new.write_bytes(b"x")
        assert clean_stale_temps([out]) == 1  # the old one of unknown owner only
        assert live.exists() and legacy_new.exists() and not legacy_old.exists()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert clean_stale_temps([out]) == 1  # its owner is gone now
    assert not live.exists()


def test_a_fifo_named_as_a_video_is_refused_at_once(tmp_path, checkpoint):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    t = time.time()
    r = run_deblur_process(fifo, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu", "-q", timeout=120)
    assert r.returncode == 1
    assert "clip.mp4" in r.stderr and "not a regular file (a FIFO)" in r.stderr
    assert time.time() - t < 60


def test_explicit_broken_links_are_named(tmp_path, checkpoint):
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    os.symlink(tmp_path / "self.png", tmp_path / "self.png")
    r = run_deblur(
        tmp_path / "dangling.png", tmp_path / "self.png", "-o", tmp_path / "out", "--model", checkpoint, "-q"
    )
    assert r.returncode == 1
    assert "dangling.png: broken symbolic link" in r.stderr
    assert "self.png: symbolic link loop" in r.stderr


def test_an_output_folder_inside_the_input_tree_is_refused_and_never_read_back(tmp_path, checkpoint):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(RGB).save(src / "a.png")
    Image.fromarray(RGB).save(src / "sub" / "b.png")
    out = src / "sharp"
    r = run_deblur(src, "-r", "-o", out, "--model", checkpoint, "--device", "cpu", "--json")
    assert r.returncode == 2 and "inside the input folder" in r.stderr, r.stderr
    assert not out.exists()
    found, _ = discover([str(src)], True, exclude=out)  # the walk itself still never enters an excluded folder
    assert sorted(rel.as_posix() for _, rel in found) == ["a.png", "sub/b.png"]


def test_a_path_named_twice_counts_once_and_a_file_is_no_output_folder(tmp_path, checkpoint):
    a = tmp_path / "a.png"
    Image.fromarray(RGB).save(a)
    os.symlink(a, tmp_path / "alias.png")
    found, _ = discover([str(a), str(a), str(tmp_path / "alias.png")], False)
    assert len(found) == 1
    r = run_deblur(a, a, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["done"] == 1
    (tmp_path / "taken.png").write_bytes(b"x")
    Image.fromarray(RGB).save(tmp_path / "b.png")
    r = run_deblur(a, tmp_path / "b.png", "-o", tmp_path / "taken.png", "--model", checkpoint, "-q")
    assert r.returncode == 2 and "taken.png: is a file" in r.stderr


def test_control_characters_in_names_are_escaped(tmp_path, checkpoint):
    bad = tmp_path / "evil\nname.png"
    bad.write_bytes(b"")
    r = run_deblur(bad, "-o", tmp_path / "out", "--model", checkpoint, "-q")
    assert r.returncode == 1
    line = next(line for line in r.stderr.splitlines() if "failed" in line)
    assert "evil\\nname.png" in line and "empty file" in line


def test_non_finite_outputs_fail_the_file_and_non_finite_weights_are_refused(tmp_path, checkpoint):
    import torch
    from safetensors.torch import load_file, save_file

    sd = load_file(str(checkpoint))
    huge = dict(sd)
    huge["ending.weight"] = sd["ending.weight"] * 1e38  # finite weights, an output that overflows
    huge["ending.bias"] = torch.full_like(sd["ending.bias"], 3.4e38)
    save_file(huge, str(tmp_path / "huge.safetensors"))
    Image.fromarray(RGB).save(tmp_path / "a.png")
    r = run_deblur(tmp_path / "a.png", "-o", tmp_path / "out", "--model", tmp_path / "huge.safetensors", "-q")
    assert r.returncode == 1 and "NaN or Inf" in r.stderr and "a.png" in r.stderr
    assert not (tmp_path / "out" / "a.png").exists()
    nan = dict(sd)
    nan["intro.weight"] = sd["intro.weight"].clone()
    nan["intro.weight"][0, 0, 0, 0] = float("nan")
    save_file(nan, str(tmp_path / "nan.safetensors"))
    r = run_deblur(tmp_path / "a.png", "-o", tmp_path / "out2", "--model", tmp_path / "nan.safetensors", "-q")
    assert r.returncode == 1 and "NaN or Inf values (intro.weight)" in r.stderr


def test_model_paths_that_are_folders_or_pickles_get_clear_messages(tmp_path):
    import torch

    Image.fromarray(RGB).save(tmp_path / "a.png")
    r = run_deblur(tmp_path / "a.png", "-o", tmp_path / "out", "--model", tmp_path)
    assert r.returncode != 0 and "is a directory" in r.stderr
    torch.save({"x": Job(tmp_path, tmp_path)}, tmp_path / "evil.pth")
    r = run_deblur(tmp_path / "a.png", "-o", tmp_path / "out", "--model", tmp_path / "evil.pth")
    assert r.returncode == 1 and "refused to load" in r.stderr
    assert "weights_only=False" not in r.stderr and "UserWarning" not in r.stderr


def test_a_trailing_slash_makes_the_output_a_folder(tmp_path, checkpoint):
    a = tmp_path / "a.png"
    Image.fromarray(RGB).save(a)
    r = run_deblur(a, "-o", str(tmp_path / "sharp.png") + "/", "--model", checkpoint, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sharp.png" / "a.png").is_file()


def test_an_unwritable_output_folder_fails_fast_in_one_line(tmp_path, checkpoint):
    for i in range(3):
        Image.fromarray(RGB).save(tmp_path / f"{i}.png")
    r = run_deblur(tmp_path, "-o", "/proc/algnet-cannot-write-here", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if "algnet" in line and "preparing" not in line]
    assert len(lines) == 1 and "cannot write output files here" in lines[0], r.stderr


def test_a_run_record_that_cannot_be_written_is_named_and_the_summary_still_printed(tmp_path, checkpoint, monkeypatch):
    from helpers.cli import run_cli

    import algnet_cli.batch.run as run

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "write_run_record", full_disk)  # the final record fails, as on a full disk
    Image.fromarray(RGB).save(tmp_path / "a.png")
    out = tmp_path / "out"
    code, _, err = run_cli("deblur", tmp_path / "a.png", "-o", out, "--model", checkpoint, "--device", "cpu")
    assert code == 1 and "Traceback" not in err
    assert "could not write the run record" in err and "algnet-run.json" in err
    assert "1 deblurred" in err and "record: not written" in err
    assert (out / "a.png").is_file()
