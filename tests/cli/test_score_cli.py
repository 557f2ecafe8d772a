"""`algnet score` end to end: pairing, unmatched files, errors, reports, sheets."""

import json

import cv2
import numpy as np
from helpers.cli import run_algnet
from skimage import data

from algnet_cli.metrics import psnr


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)


def _run(*args):
    return run_algnet("score", *args)


def test_pairing_unmatched_mismatch_and_reports(tmp_path):
    rng = np.random.default_rng(0)
    gt_img = data.astronaut()[:128, :160]
    noisy = np.clip(gt_img + rng.normal(0, 8, gt_img.shape), 0, 255).astype(np.uint8)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    _write(gt / "a.png", gt_img)
    _write(pred / "a.png", noisy)  # same relative path
    _write(gt / "sub" / "b.png", gt_img)
    _write(pred / "sub" / "b.jpg", gt_img)  # matched by stem (JPEG: lossy but close)
    _write(gt / "c.png", gt_img)
    _write(pred / "c.png", noisy[:100])  # size mismatch
    _write(pred / "only_pred.png", noisy)
    _write(gt / "only_gt.png", gt_img)
    (pred / "notes.txt").write_text("not an image")
    out = _run(
        pred,
        gt,
        "--report-json",
        tmp_path / "r.json",
        "--csv",
        tmp_path / "r.csv",
        "--markdown",
        tmp_path / "r.md",
        "--compare",
        tmp_path / "sheets",
        "--quiet",
    )
    assert out.returncode == 1  # one pair failed
    assert "c.png" in out.stderr and "size mismatch" in out.stderr
    assert "unmatched prediction without ground truth: only_pred.png" in out.stderr
    assert "unmatched ground truth without prediction: only_gt.png" in out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    rows = {r["name"]: r for r in report["pairs"]}
    assert set(rows) == {"a.png", "sub/b.jpg", "c.png"}
    assert rows["sub/b.jpg"]["gt"].endswith("sub/b.png")
    assert abs(rows["a.png"]["psnr"] - psnr(noisy, gt_img)) < 1e-9
    assert rows["c.png"]["error"] and rows["c.png"]["psnr"] is None
    assert report["protocol"]["name"] == "basicsr" and report["protocol"]["ssim_sigma"] == 1.5
    assert report["unmatched_predictions"] == ["only_pred.png"] and report["unmatched_ground_truths"] == ["only_gt.png"]
    assert report["summary"]["pairs"] == 2 and report["summary"]["failed"] == 1
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("name,pred,gt,psnr,ssim")  # plain CSV
    assert "| **mean** |" in (tmp_path / "r.md").read_text()
    sheets = sorted(p.name for p in (tmp_path / "sheets").iterdir() if not p.name.startswith("."))
    assert sheets == ["a.png", "sub__b.png"]
    assert (tmp_path / "sheets" / ".algnet-compare.json").is_file()  # the folder is known as algnet's
    sheet = cv2.imread(str(tmp_path / "sheets" / "a.png"))
    assert sheet.shape[1] == 2 * 160 and sheet.shape[0] > 128


def test_all_good_exit_zero_and_table(tmp_path):
    img = data.coffee()[:64, :96]
    _write(tmp_path / "p" / "x.png", img)
    _write(tmp_path / "g" / "x.png", img)
    out = _run(tmp_path / "p", tmp_path / "g", "--protocol", "gopro")
    assert out.returncode == 0, out.stderr
    assert "inf" in out.stdout and "1.0000" in out.stdout and "gopro" in out.stdout


def test_two_files_and_usage_errors(tmp_path):
    img = data.coffee()[:64, :96]
    _write(tmp_path / "p.png", img)
    _write(tmp_path / "g.png", img)
    assert _run(tmp_path / "p.png", tmp_path / "g.png", "-q").returncode == 0
    bad = _run(tmp_path / "p.png", tmp_path / "g.png", "--protocol", "matlab")
    assert bad.returncode == 2 and "'matlab' is not one of 'basicsr'" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "empty").mkdir()
    none = _run(tmp_path / "empty", tmp_path / "empty")
    assert none.returncode == 1 and "no pair was scored" in none.stderr


def test_ambiguous_stems_and_identical_pairs(tmp_path):
    """A prediction matching two ground truths by stem is named as ambiguous; an identical pair has
    infinite PSNR, reported as such, and counts as 100 dB in a mean that stays finite."""
    rng = np.random.default_rng(1)
    gt_img = data.astronaut()[:64, :64]
    noisy = np.clip(gt_img + rng.normal(0, 8, gt_img.shape), 0, 255).astype(np.uint8)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    _write(gt / "x.png", gt_img)
    _write(gt / "x.bmp", gt_img)
    _write(pred / "x.jpg", gt_img)
    _write(gt / "same.png", gt_img)
    _write(pred / "same.png", gt_img)
    _write(gt / "n.png", gt_img)
    _write(pred / "n.png", noisy)
    out = _run(pred, gt, "--report-json", tmp_path / "r.json")
    assert "x.jpg (ambiguous: matches x.bmp, x.png)" in out.stderr
    assert "1 identical pair (infinite PSNR) counts as 100 dB in the mean" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    rows = {r["name"]: r for r in report["pairs"]}
    assert rows["same.png"]["psnr"] == "inf"
    summary = report["summary"]
    expected = (100.0 + psnr(noisy, gt_img)) / 2
    assert abs(summary["psnr"] - expected) < 1e-9
    assert summary["psnr_cap_db"] == 100.0 and summary["identical_pairs"] == 1
