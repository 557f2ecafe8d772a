"""Blur triage: the score on real photos never used for calibration, its invariances, flat regions,
the command, --skip-sharp, the preview sheet and the blur scores in the run record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import tifffile
from helpers.cli import run_algnet, run_deblur, write_identity_checkpoint, write_tiny_checkpoint
from PIL import Image

from algnet_cli.train.kernels import disk_kernel, line_kernel, trajectory_kernel
from algnet_cli.train.synth import blur_linear
from algnet_cli.triage import blur_score, judge, score_image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")  # real photos, not in the calibration


def photo(name):
    img = getattr(skimage.data, name)()
    return (img[0] if isinstance(img, tuple) else img)[..., :3]


def q8(x):
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def blurred(img, rng, kind):
    if kind == "motion":
        k = (trajectory_kernel if rng.uniform() < 0.5 else line_kernel)(rng, 67, min_length=9)
    else:
        k = disk_kernel(rng, 31, radius=rng.uniform(3, 8))
    return q8(blur_linear(img.astype(np.float32) / 255, k))


def big_photo():
    """A sharp 3600 x 2400 photo: a real photo tiled with mirrored copies (every pixel as sharp as
    the original's), with a real blurred twin."""
    img = skimage.data.astronaut()
    row = np.concatenate([img, img[:, ::-1]] * 4, axis=1)[:, :3600]
    return np.ascontiguousarray(np.concatenate([row, row[::-1]] * 3, axis=0)[:2400])


def roc_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_real_photos_sharp_and_blurred_are_told_apart():
    rng = np.random.default_rng(0)
    scores, labels = [], []
    for name in PHOTOS:
        img = photo(name)
        scores.append(blur_score(img))
        labels.append(False)
        for kind in ("motion", "defocus", "motion"):
            scores.append(blur_score(blurred(img, rng, kind)))
            labels.append(True)
    verdicts = [judge(s) for s in scores]
    assert roc_auc(scores, labels) >= 0.98
    right = sum((v == "blurred") == y and v != "unsure" for v, y in zip(verdicts, labels))
    assert right / len(labels) >= 0.9, list(zip(verdicts, labels))


def test_the_real_blurred_examples_are_judged_blurred():
    from algnet_cli.images import read_image

    for p in sorted((ROOT / "examples" / "blurred").iterdir()):
        assert judge(blur_score(read_image(p))) == "blurred", p.name


def test_size_and_contrast_do_not_change_the_verdict():
    rng = np.random.default_rng(1)
    sharp = big_photo()
    for img in (sharp, q8(blur_linear(sharp.astype(np.float32) / 255, line_kernel(rng, 41, 25)))):
        h, w = img.shape[:2]
        versions = [
            cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            img,
            cv2.resize(img, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC),
            np.round(img.astype(np.float32) * 0.5 + 64).astype(np.uint8),  # half contrast
        ]
        scores = [blur_score(v) for v in versions]
        assert len({judge(s) for s in scores}) == 1, scores
        assert max(scores) - min(scores) <= 0.1, scores


def test_flat_regions_do_not_make_a_sharp_photo_blurred():
    img = skimage.data.astronaut()
    sky = np.linspace(0.35, 0.8, 1200, dtype=np.float32)[:, None, None] * np.array([0.7, 0.8, 1.0], np.float32)
    sky = sky + np.random.default_rng(2).normal(0, 1 / 255, (1200, 512, 3)).astype(np.float32)
    mostly_sky = np.concatenate([q8(sky), img[-200:]], axis=0)  # 86% sky over a strip of the photo
    assert judge(blur_score(mostly_sky)) == "sharp"
    plain = np.full((600, 800, 3), 128, np.uint8)  # nothing at all to judge: never called sharp, nor blurred
    assert judge(blur_score(plain)) == "unsure"


def test_a_jpeg_is_scored_as_its_pixels_are(tmp_path):
    img = big_photo()
    cv2.imwrite(str(tmp_path / "a.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "a.png"), img[..., ::-1])
    assert abs(score_image(tmp_path / "a.jpg") - score_image(tmp_path / "a.png")) <= 0.05


def test_triage_and_skip_sharp_judge_a_file_alike_by_its_blurriest_page(tmp_path):
    from algnet_cli.batch.plan import Job
    from algnet_cli.batch.stills import load_image
    from algnet_cli.triage import score_path

    img = big_photo()
    blurred = cv2.blur(img, (1, 31))  # 31 px of vertical motion
    cv2.imwrite(str(tmp_path / "grey.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 80])
    cv2.imwrite(str(tmp_path / "colour.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    cv2.imwrite(str(tmp_path / "blurred.jpg"), blurred[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    tifffile.imwrite(tmp_path / "pages.tif", np.stack([img, blurred]), photometric="rgb")  # a sharp page, a blurred one
    for name in ("grey.jpg", "colour.jpg", "blurred.jpg", "pages.tif"):
        row = score_path(tmp_path / name)
        dec = load_image(Job(tmp_path / name, tmp_path / "out" / name), skip_sharp=True)
        assert row.score == dec.blur and judge(row.score) == dec.verdict, name
    assert judge(score_path(tmp_path / "pages.tif").score) == "blurred"  # one blurred page: deblurred
    assert judge(score_path(tmp_path / "colour.jpg").score) == "sharp"


def test_an_image_too_small_to_measure_is_unsure():
    img = big_photo()
    for shape in ((60, 60), (40, 900), (900, 30), (8, 8)):
        assert judge(blur_score(np.ascontiguousarray(img[: shape[0], : shape[1]]))) == "unsure", shape


def triage_cli(*args):
    return run_algnet("triage", *args)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two sharp photos (a PNG and a JPEG), two blurred ones, a damaged file and a short video."""
    from helpers.videos import make_video

    d = tmp_path_factory.mktemp("triage")
    rng = np.random.default_rng(3)
    Image.fromarray(skimage.data.astronaut()).save(d / "sharp1.png")
    Image.fromarray(skimage.data.coffee()).save(d / "sharp2.jpg", quality=95)
    Image.fromarray(blurred(skimage.data.chelsea(), rng, "motion")).save(d / "blur1.png")
    Image.fromarray(blurred(skimage.data.rocket(), rng, "defocus")).save(d / "blur2.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    make_video(d / "clip.mp4", 64, 48, list(range(0, 1000, 40)))
    return d


def test_triage_sorts_by_score_and_names_a_bad_file(folder, tmp_path):
    r = triage_cli(folder, "--csv", tmp_path / "t.csv")
    assert r.returncode == 1  # one file could not be read
    assert "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip() and ln.lstrip()[0].isdigit() and "scored" not in ln]
    assert len(lines) == 5  # four photos and the video
    scores = [float(ln.split()[0]) for ln in lines]
    assert scores == sorted(scores, reverse=True)
    verdicts = {Path(ln.split()[2]).name: ln.split()[1] for ln in lines}
    assert verdicts["blur1.png"] == verdicts["blur2.png"] == "blurred"
    assert verdicts["sharp1.png"] == verdicts["sharp2.jpg"] == "sharp"
    assert "median of" in next(ln for ln in lines if "clip.mp4" in ln)
    assert "5 scored" in r.stdout and "2 blurred" in r.stdout and "1 failed" in r.stdout
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0].startswith("path,score,verdict,measure") and len(rows) == 6


def test_triage_json_relative_and_threshold(folder):
    r = triage_cli(folder / "sharp1.png", folder / "blur1.png", folder / "sharp2.jpg", folder / "blur2.png", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [Path(x["path"]).name for x in doc["rows"]][:2] in (["blur1.png", "blur2.png"], ["blur2.png", "blur1.png"])
    assert doc["summary"] == {"blurred": 2, "unsure": 0, "sharp": 2, "scored": 4, "failed": 0}
    r = triage_cli(folder / "sharp1.png", folder / "blur1.png", folder / "sharp2.jpg", folder / "blur2.png",
                   "--relative", "25", "--json")  # fmt: skip
    assert json.loads(r.stdout)["summary"]["blurred"] == 1
    r = triage_cli(folder / "blur1.png", "--threshold", "0.9999", "--json")
    assert json.loads(r.stdout)["rows"][0]["verdict"] in ("sharp", "unsure")
    r = triage_cli(folder / "blur1.png", "--threshold", "0.5", "--relative", "10")
    assert r.returncode == 2


def test_skip_sharp_copies_the_sharp_ones_and_deblurs_the_rest(folder, tmp_path):
    model = write_tiny_checkpoint(tmp_path / "tiny.safetensors")  # a model that changes the image
    names = ["sharp1.png", "sharp2.jpg", "blur1.png", "blur2.png"]
    r = run_deblur(*[folder / n for n in names], "-o", f"{tmp_path / 'out'}/", "--model", model, "--skip-sharp", "-q")
    assert r.returncode == 0, r.stderr
    for n in names[:2]:
        assert (tmp_path / "out" / n).read_bytes() == (folder / n).read_bytes()  # byte for byte
    for n in names[2:]:
        assert not np.array_equal(np.asarray(Image.open(tmp_path / "out" / n)), np.asarray(Image.open(folder / n)))
    files = {Path(f["input"]).name: f for f in json.loads((tmp_path / "out" / "algnet-run.json").read_text())["files"]}
    assert files["sharp1.png"]["triage"] == {"verdict": "sharp", "action": "copied"}
    assert files["blur1.png"]["triage"] == {"verdict": "blurred", "action": "deblurred"}
    assert files["blur2.png"]["blur"]["input"] > 0.55 > files["sharp2.jpg"]["blur"]["input"]
    assert any("judged sharp" in n and "copied unchanged" in n for n in files["sharp1.png"]["notes"])
    r = run_deblur(*[folder / n for n in names], "-o", f"{tmp_path / 'out2'}/", "--model", model, "--skip-sharp",
                   "--json")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["copied"] == 2 and doc["deblurred"] == 2 and sorted(Path(p).name for p in doc["copies"]) == names[:2]
    r = run_deblur(*[folder / n for n in names], "-o", f"{tmp_path / 'out3'}/", "--model", model, "--skip-sharp")
    assert "2 deblurred, 2 copied as they were (judged sharp)" in r.stderr


def test_the_record_holds_the_blur_of_input_and_output(folder, tmp_path):
    model = write_identity_checkpoint(tmp_path / "identity.safetensors")  # the output is the input
    r = run_deblur(folder / "blur1.png", folder / "sharp1.png", "-o", f"{tmp_path / 'out'}/", "--model", model, "-q")
    assert r.returncode == 0, r.stderr
    for f in json.loads((tmp_path / "out" / "algnet-run.json").read_text())["files"]:
        blur = f["blur"]
        assert blur["input"] == blur["output"] and blur["gain"] == 0.0  # the identity model gains nothing
        assert "triage" not in f  # --skip-sharp was not asked for


def test_preview_writes_the_sheet_and_nothing_else(folder, tmp_path):
    model = write_identity_checkpoint(tmp_path / "identity.safetensors")
    out = tmp_path / "previews"
    out.mkdir()
    before = sorted(folder.iterdir())
    r = run_deblur(folder, "--preview", out / "sheet.png", "--preview-count", "3", "--model", model)
    assert r.returncode == 1  # the damaged file is one of the three picked: its row says why
    assert "broken.jpg" in r.stderr and "preview sheet:" in r.stdout
    assert sorted(folder.iterdir()) == before and sorted(out.iterdir()) == [out / "sheet.png"]
    sheet = np.asarray(Image.open(out / "sheet.png"))
    from algnet_cli.batch.preview import CROP, GAP, LABEL_HEIGHT

    assert sheet.shape[0] == LABEL_HEIGHT + 3 * (LABEL_HEIGHT + CROP + GAP)
    r = run_deblur(folder / "sharp1.png", "--preview", out / "one.png", "--model", model)
    assert r.returncode == 0, r.stderr
    one = np.asarray(Image.open(out / "one.png"))
    top = 2 * LABEL_HEIGHT
    before_crop = one[top : top + CROP, GAP : GAP + CROP]
    after_crop = one[top : top + CROP, 2 * GAP + CROP : 2 * GAP + 2 * CROP]
    assert np.array_equal(before_crop, after_crop)  # the identity model: before and after equal
    assert before_crop.std() > 20  # a crop with detail, not a flat corner


def test_a_fifo_or_a_broken_link_is_named_at_once(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.jpg")  # opening it to read its first bytes would block forever
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "ok.png")
    r = subprocess.run([sys.executable, "-m", "algnet_cli", "triage", str(tmp_path)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert "pipe.jpg: not a regular file" in r.stderr and "gone.png: broken symbolic link" in r.stderr
    assert "1 scored" in r.stdout and "2 failed" in r.stdout


def test_the_dry_run_shows_skip_sharps_decisions_and_the_upright_size(folder, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for n in ("sharp1.png", "blur1.png"):
        (src / n).write_bytes((folder / n).read_bytes())
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.fromarray(big_photo()[:200, :320]).save(src / "turned.jpg", exif=exif, quality=95)
    r = run_deblur(src, "-o", tmp_path / "out", "--skip-sharp", "--dry-run")
    assert r.returncode == 0, r.stderr
    line = {Path(ln.split(" -> ")[0]).name: ln for ln in r.stdout.splitlines() if " -> " in ln}
    assert "sharp" in line["sharp1.png"] and "would be copied, not deblurred" in line["sharp1.png"]
    assert "blurred" in line["blur1.png"] and "would be deblurred" in line["blur1.png"]
    assert ": 200x320," in line["turned.jpg"]  # width x height as written: upright
    assert not (tmp_path / "out").exists()
