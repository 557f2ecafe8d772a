"""Training checks what its files really are before step 1, resumes only the run it was, and holds no
more photos in memory than a bounded cache."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers.cli import run_cli
from PIL import Image

from algnet_cli.train import datasets
from algnet_cli.train.datasets import PairedFolder, SyntheticPairs

RNG = np.random.default_rng(8)


def _gopro(root, n=2, size=(96, 128)):
    for d in ("blur", "sharp"):
        (root / "seq" / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = RNG.integers(0, 256, size + (3,), dtype=np.uint8)
        Image.fromarray(img).save(root / "seq" / "sharp" / f"{i}.png")
        Image.fromarray(img // 2).save(root / "seq" / "blur" / f"{i}.png")


def test_pairs_are_compared_upright_and_bad_files_are_refused_before_step_1(tmp_path):
    _gopro(tmp_path, n=1)
    img = RNG.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 128 wide, shown 96 wide
    Image.fromarray(np.ascontiguousarray(np.rot90(img, 1))).save(tmp_path / "seq" / "blur" / "t.jpg", exif=exif)
    Image.fromarray(img).save(tmp_path / "seq" / "sharp" / "t.png")
    tifffile.imwrite(tmp_path / "seq" / "blur" / "m.tif", np.stack([img, img]), photometric="rgb")
    Image.fromarray(img).save(tmp_path / "seq" / "sharp" / "m.png")
    Image.fromarray(img).save(tmp_path / "cut.jpg", quality=90)
    (tmp_path / "seq" / "blur" / "c.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:-400])
    Image.fromarray(img).save(tmp_path / "seq" / "sharp" / "c.png")
    ds = PairedFolder(tmp_path, patch=64)
    names = sorted(b.name for b, _ in ds.pairs)
    assert names == ["0.png", "t.jpg"]  # the turned JPEG pairs with its upright partner
    why = dict(ds.refused)
    assert "2 pages or frames" in why[str(tmp_path / "seq" / "blur" / "m.tif")]
    assert "truncated JPEG" in why[str(tmp_path / "seq" / "blur" / "c.jpg")]
    blurred, sharp = ds[1]  # the sampled pair reads fine
    assert blurred.shape == sharp.shape


def test_training_memory_is_bounded_whatever_the_number_of_photos(tmp_path, monkeypatch):
    for i in range(12):
        Image.fromarray(RNG.integers(0, 256, (400, 500, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(datasets, "PHOTO_CACHE_BYTES", 2 * 400 * 500 * 3)
    ds = SyntheticPairs(tmp_path, patch=48, seed=1)
    assert not hasattr(ds, "images") and len(ds.photos) == 12  # paths and sizes, no pixels
    for i in range(40):
        ds[i]
        assert sum(a.nbytes for a in ds._cache.values()) <= 2 * 400 * 500 * 3
    again = SyntheticPairs(tmp_path, patch=48, seed=1)  # decoding on demand changes nothing
    for i in (0, 7, 33):
        assert all(np.array_equal(a, b) for a, b in zip(ds[i], again[i]))


def _photos(root, n=2, side=160):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(RNG.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--val-photos", "nowhere/"], "nowhere"),
        (["--val-photos", "empty/"], "empty"),
        (["--val-photos", "tiny/"], "smaller than"),
        (["--name", "n" * 300], "--name"),
        (["--blocks", "1,1,0,1,1,1,1,1,1"], "--blocks"),
        (["--blocks", "1,1,1"], "--blocks"),
        (["--blocks", "1,1,1,1,1,1,1,1,1,1,1"], "--blocks"),
        (["-o", "afile.txt"], "afile.txt"),
    ],
)
def test_training_options_are_checked_before_step_1(tmp_path, monkeypatch, extra, says):
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "photos")
    (tmp_path / "empty").mkdir()
    _photos(tmp_path / "tiny", side=40)
    (tmp_path / "afile.txt").write_text("mine")
    args = ["train", "--photos", "photos/", "-o", "run", "--steps", "1", "--patch", "64", "--device", "cpu", *extra]
    if "-o" in extra:
        args = [a for a in args if a not in ("run",)]
        args.remove("-o")
    code, out, err = run_cli(*args)
    assert code == 2 and says in err and "Traceback" not in err, err
    assert not (tmp_path / "run" / "last.pt").exists()
    assert (tmp_path / "afile.txt").read_text() == "mine"


def test_a_resumed_run_keeps_its_data_and_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "photos")
    _photos(tmp_path / "other")
    base = ["train", "-o", "run", "--patch", "64", "--batch", "1", "--device", "cpu", "--width", "8",
            "--blocks", "1,1,1,1,1,1,1,1,1", "-q"]  # fmt: skip
    code, out, err = run_cli(*base, "--photos", "photos/", "--steps", "1", "--seed", "1")
    assert code == 0, err
    for changed in (["--photos", "other/", "--seed", "1"], ["--photos", "photos/", "--seed", "5"]):
        code, out, err = run_cli(*base, *changed, "--steps", "2")
        assert code == 2 and "other data" in err, err
    code, out, err = run_cli(*base, "--photos", "./photos", "--seed", "1", "--steps", "2")  # the same folder
    assert code == 0, err
