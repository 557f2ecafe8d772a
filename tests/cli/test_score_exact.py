"""`algnet score` is exact about what it scored: failures by name, ambiguity named, reports that are
valid for their readers (strict JSON, plain CSV, escaped Markdown)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import tifffile
from helpers.cli import run_cli
from PIL import Image

RNG = np.random.default_rng(4)


def _rgb(h=48, w=64):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def folders(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    return pred, gt


def test_a_prediction_with_nan_fails_by_name_and_the_reports_stay_valid(folders, tmp_path):
    pred, gt = folders
    good = RNG.random((40, 48, 3)).astype(np.float32)
    for name in ("a", "b"):
        tifffile.imwrite(gt / f"{name}.tif", good, photometric="rgb")
    bad = good.copy()
    bad[3, 4, 1] = np.nan
    tifffile.imwrite(pred / "a.tif", bad, photometric="rgb")
    tifffile.imwrite(pred / "b.tif", np.clip(good + 0.01, 0, 1), photometric="rgb")
    code, out, err = run_cli("score", pred, gt, "--report-json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert code == 1, err
    assert str(pred / "a.tif") in err and "NaN" in err
    doc = _strict((tmp_path / "r.json").read_text())
    assert doc["summary"]["pairs"] == 1 and doc["summary"]["failed"] == 1
    assert np.isfinite(doc["summary"]["psnr"])


def test_two_predictions_for_one_ground_truth_are_named_ambiguous(folders, tmp_path):
    pred, gt = folders
    img = _rgb()
    Image.fromarray(img).save(gt / "a.png")
    Image.fromarray(img).save(pred / "a.jpg", quality=90)
    tifffile.imwrite(pred / "a.tif", img, photometric="rgb")
    Image.fromarray(img).save(gt / "b.png")
    Image.fromarray(img).save(pred / "b.png")
    code, out, err = run_cli("score", pred, gt, "--report-json", tmp_path / "r.json")
    doc = _strict((tmp_path / "r.json").read_text())
    assert [p["name"] for p in doc["pairs"]] == ["b.png"]  # neither a.jpg nor a.tif is scored
    ambiguous = [u for u in doc["unmatched_predictions"] if "ambiguous" in u]
    assert len(ambiguous) == 2 and all("a.png" in u for u in ambiguous)
    assert "a.jpg" in err and "a.tif" in err and "ambiguous" in err


def test_grey_and_alpha_is_scored_on_grey_against_grey(folders):
    pred, gt = folders
    grey = RNG.integers(0, 256, (40, 48), dtype=np.uint8)
    Image.fromarray(grey).save(gt / "g.png")
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), mode="LA").save(pred / "g.png")
    code, out, err = run_cli("score", pred, gt)
    assert code == 0, err
    assert "inf" in out


def test_names_are_literal_in_the_table_and_escaped_in_markdown(folders, tmp_path):
    pred, gt = folders
    names = ["a[/]b.png", "c|d*e.png", "f`<g>.png"]  # a[/]b.png: ]b.png in the folder a[
    for root in folders:
        (root / "a[").mkdir()
    for n in names:
        img = _rgb()
        Image.fromarray(img).save(gt / n)
        Image.fromarray(np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8)).save(pred / n)
    code, out, err = run_cli("score", pred, gt, "--markdown", tmp_path / "r.md")
    assert code == 0, err
    assert "a[/]b.png" in out and "internal error" not in err
    md = (tmp_path / "r.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "PSNR" not in ln]
    for ln in rows:  # every row has the header's cells: no pipe inside a name splits a cell
        cells = [c for c in _split_cells(ln)]
        assert len(cells) == 3, ln
    assert "c\\|d\\*e.png" in md and "f\\`&lt;g&gt;.png" in md


def _split_cells(line: str) -> list[str]:
    cells, cur, i = [], "", 1
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur += line[i : i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    return cells


def test_the_csv_is_plain_with_notes_and_the_unmatched_files(folders, tmp_path):
    pred, gt = folders
    img = _rgb()
    Image.fromarray(img).save(gt / "a.png")
    rgba = np.concatenate([img, RNG.integers(0, 256, img.shape[:2] + (1,), dtype=np.uint8)], -1)
    Image.fromarray(rgba).save(pred / "a.png")  # alpha the truth has not: a note
    Image.fromarray(img).save(pred / "stray.png")
    Image.fromarray(img).save(gt / "lonely.png")
    code, out, err = run_cli("score", pred, gt, "--csv", tmp_path / "r.csv")
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rows[0] == ["name", "pred", "gt", "psnr", "ssim", "input_psnr", "input_ssim", "error", "note"]
    by_name = {r[0]: r for r in rows[1:]}
    assert "alpha channel is not scored" in by_name["a.png"][8]
    assert "unmatched prediction" in by_name["stray.png"][7] and "unmatched ground truth" in by_name["lonely.png"][7]


def test_notes_for_a_float_truth_over_one_and_an_alignment_that_did_not_converge(folders, tmp_path):
    pred, gt = folders
    truth = RNG.random((40, 48, 3)).astype(np.float32) * 1.5
    tifffile.imwrite(gt / "f.tif", truth, photometric="rgb")
    tifffile.imwrite(pred / "f.tif", truth * 0.99, photometric="rgb")
    code, out, err = run_cli("score", pred, gt, "--report-json", tmp_path / "r.json")
    note = _strict((tmp_path / "r.json").read_text())["pairs"][0]["note"]
    assert note and "over 1.0" in note
    flat = np.full((96, 96, 3), 128, np.uint8)  # nothing to align on: ECC cannot converge
    Image.fromarray(flat).save(gt / "flat.png")
    Image.fromarray(flat).save(pred / "flat.png")
    code, out, err = run_cli("score", pred / "flat.png", gt / "flat.png", "--protocol", "realblur", "--report-json",
                             tmp_path / "r2.json")  # fmt: skip
    note = _strict((tmp_path / "r2.json").read_text())["pairs"][0]["note"]
    assert note and "did not converge" in note
