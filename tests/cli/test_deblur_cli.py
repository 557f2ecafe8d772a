"""`algnet deblur` end to end on a folder of mixed, partly broken files."""

import json
import os
import signal

import cv2
import numpy as np
import pytest
import tifffile
from helpers.cli import hold_after, run_deblur, start_deblur, write_tiny_checkpoint
from PIL import Image
from skimage import data

from algnet_cli.fileio import TEMP_PREFIX
from algnet_cli.images import read_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _deblur(*args, **kw):
    return run_deblur(*args, **kw)


def _start(src, out, checkpoint, *extra):
    return start_deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu", *extra)


def make_folder(root):
    root.mkdir()
    rgb = data.astronaut()[100:140, 150:206]  # 40 x 56
    cv2.imwrite(str(root / "a8.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    rgb16 = rgb.astype(np.uint16) * 257
    cv2.imwrite(str(root / "b16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    tifffile.imwrite(root / "c16.tif", rgb16, photometric="rgb")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(root / "d_orient6.jpg", exif=exif.tobytes(), quality=95)
    rgba = np.dstack([rgb, np.linspace(0, 255, 40 * 56).reshape(40, 56).astype(np.uint8)])
    Image.fromarray(rgba).save(root / "e_rgba.png")
    Image.fromarray(rgb[..., 1]).save(root / "f_grey.jpg")
    (root / "g_empty.png").write_bytes(b"")
    Image.fromarray(rgb).save(root / "h_trunc.jpg", quality=90)
    full = (root / "h_trunc.jpg").read_bytes()
    (root / "h_trunc.jpg").write_bytes(full[: len(full) // 2])
    (root / "i_fake.jpg").write_text("this is not a picture")
    (root / "notes.txt").write_text("not an image either")
    return rgb, rgba


def test_mixed_folder(tmp_path, checkpoint):
    src, out = tmp_path / "in", tmp_path / "out"
    rgb, rgba = make_folder(src)
    r = _deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu", "--quiet")
    assert r.returncode == 1, r.stderr
    for bad in ("g_empty.png", "h_trunc.jpg", "i_fake.jpg"):
        assert bad in r.stderr
        assert not (out / bad).exists()
    assert "Traceback" not in r.stderr
    expect = {
        "a8.png": ((40, 56, 3), np.uint8),
        "b16.png": ((40, 56, 3), np.uint16),
        "c16.tif": ((40, 56, 3), np.uint16),
        "d_orient6.jpg": ((56, 40, 3), np.uint8),  # upright
        "e_rgba.png": ((40, 56, 4), np.uint8),
        "f_grey.jpg": ((40, 56), np.uint8),
    }
    for name, (shape, dtype) in expect.items():
        img = read_image(out / name)
        assert img.shape == shape and img.dtype == dtype, name
    assert np.array_equal(read_image(out / "e_rgba.png")[..., 3], rgba[..., 3])
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    record = json.loads((out / "algnet-run.json").read_text())
    statuses = {os.path.basename(f["input"]): f["status"] for f in record["files"]}
    assert statuses["a8.png"] == "done" and statuses["g_empty.png"] == "failed"
    assert record["model"]["config"]["width"] == 8 and len(record["model"]["sha256"]) == 64
    assert record["scan_backend"] == "fused" and record["precision"] == "fp32"  # auto on the CPU
    # a second run resumes: everything good is skipped, the bad ones fail again
    r2 = _deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu", "--json")
    summary = json.loads(r2.stdout)
    assert summary["skipped"] == 6 and summary["done"] == 0 and summary["failed"] == 3


def test_outputs_equal_the_api(tmp_path, checkpoint):
    import algnet_cli

    src = tmp_path / "x.png"
    rgb = data.astronaut()[:48, :64]
    cv2.imwrite(str(src), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    r = _deblur(src, "-o", tmp_path / "y.png", "--model", checkpoint, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    d = algnet_cli.Deblurrer(str(checkpoint), device="cpu")
    assert np.array_equal(read_image(tmp_path / "y.png"), d.deblur(rgb))


def test_refuses_to_overwrite_inputs_and_collisions(tmp_path, checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    img = data.astronaut()[:32, :32]
    Image.fromarray(img).save(src / "x.png")
    Image.fromarray(img).save(src / "x.jpg")
    r = _deblur(src, "-o", src, "--model", checkpoint, "--format", "jpg")
    assert r.returncode == 2 and "would overwrite the input" in r.stderr and "x.jpg" in r.stderr
    r = _deblur(src, "-o", tmp_path / "out", "--model", checkpoint, "--format", "png")
    assert r.returncode == 2 and "would both be written" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_interrupted_run_leaves_no_partial_output_and_resumes(tmp_path, checkpoint):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb = data.astronaut()
    for i in range(12):
        cv2.imwrite(str(src / f"{i:02d}.png"), cv2.cvtColor(np.roll(rgb, i * 7, axis=1)[:256, :256], cv2.COLOR_RGB2BGR))
    p = _start(src, out, checkpoint, "--no-tlc")
    hold_after(p, 2)  # held with 2 files written and 10 to go
    p.send_signal(signal.SIGKILL)
    p.wait()
    written = sorted(out.glob("[0-9]*.png"))
    assert 2 <= len(written) < 12  # held: the kill came with work left
    for f in written:  # every output there is complete
        assert read_image(f).shape == (256, 256, 3)
    mtimes = {f.name: f.stat().st_mtime_ns for f in written}
    r = _deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu", "--no-tlc", "--json")
    summary = json.loads(r.stdout)
    assert r.returncode == 0 and summary["skipped"] == len(written) and summary["done"] == 12 - len(written)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in mtimes.items())  # untouched
    assert not [f for f in out.iterdir() if f.name.startswith(TEMP_PREFIX)]


@pytest.mark.slow
def test_sigint_cleans_up(tmp_path, checkpoint):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        cv2.imwrite(str(src / f"{i}.png"), data.astronaut()[:256, :256])
    p = _start(src, out, checkpoint)
    hold_after(p, 1)  # held with 1 file written and 5 to go
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGCONT)  # the interrupt is taken as the run goes on
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err
    assert 1 <= len(list(out.glob("[0-9]*.png"))) < 6
    assert not [f for f in out.iterdir() if f.name.startswith(TEMP_PREFIX)]
    for f in out.glob("[0-9]*.png"):
        assert read_image(f).shape == (256, 256, 3)


def test_gt_scores_outputs_and_inputs(tmp_path, checkpoint):
    from algnet_cli.metrics import psnr

    blur, sharp, out = tmp_path / "blur" / "seq1", tmp_path / "sharp" / "seq1", tmp_path / "out"
    blur.mkdir(parents=True)
    sharp.mkdir(parents=True)
    gt = data.astronaut()[:64, :80]
    noisy = np.clip(gt + np.random.default_rng(0).normal(0, 10, gt.shape), 0, 255).astype(np.uint8)
    Image.fromarray(gt).save(sharp / "001.png")
    Image.fromarray(noisy).save(blur / "001.png")
    Image.fromarray(noisy).save(blur / "002.png")  # no ground truth
    r = _deblur(
        tmp_path / "blur",
        "-r",
        "-o",
        out,
        "--model",
        checkpoint,
        "--device",
        "cpu",
        "--gt",
        tmp_path / "sharp",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert "no ground truth for" in r.stderr and "002.png" in r.stderr
    scores = json.loads(r.stdout)["scores"]
    assert scores["pairs"] == 1
    assert abs(scores["input_psnr"] - psnr(noisy, gt)) < 1e-9
    assert abs(scores["psnr"] - psnr(read_image(out / "seq1" / "001.png"), gt)) < 1e-9
    assert abs(scores["delta_psnr"] - (scores["psnr"] - scores["input_psnr"])) < 1e-9
    record = json.loads((out / "algnet-run.json").read_text())
    assert record["scores"]["protocol"]["name"] == "basicsr"


def test_embedded_default_model_works_offline(tmp_path):
    import stat

    img = data.astronaut()[:96, :128]
    cv2.imwrite(str(tmp_path / "x.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    env = dict(
        os.environ,
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HUB_OFFLINE="1",
        ALGNET_CACHE_DIR=str(tmp_path / "cache"),
        ALGNET_CONFIG_DIR=str(tmp_path / "config"),
    )
    r = _deblur(tmp_path / "x.png", "-o", tmp_path / "out", "--device", "cpu", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = read_image(tmp_path / "out" / "x.png")
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() > 0.5  # a real model changed it
    record = json.loads((tmp_path / "out" / "algnet-run.json").read_text())
    assert record["model"]["source"] == "default" and record["model"]["path"].endswith("algnet-small.safetensors")
    assert stat.S_IMODE((tmp_path / "out" / "x.png").stat().st_mode) & 0o044  # readable by others, as usual
