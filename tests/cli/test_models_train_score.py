"""`train`, `models` and `score` as careful as `deblur`: no lost registry entries, no silent garbage,
no internal errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from helpers.cli import run_algnet, write_identity_checkpoint, write_tiny_checkpoint
from PIL import Image


def algnet(*args, env=None, **kw):
    return run_algnet(*args, env={**os.environ, **(env or {})}, **kw)


@pytest.fixture
def isolated(tmp_path):
    return {"ALGNET_CONFIG_DIR": str(tmp_path / "cfg"), "ALGNET_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.slow
def test_concurrent_imports_all_end_in_the_registry_with_no_orphan(tmp_path, isolated):
    ckpt = write_tiny_checkpoint(tmp_path / "m.safetensors")
    gate = tmp_path / "gate"  # a barrier: each process, its imports done, waits there for all four
    gate.mkdir()
    code = (
        "import os, sys, time; import torch, algnet_cli.model.checkpoint, algnet_cli.hub; "
        "from algnet_cli.cli import app; gate = sys.argv[1]; open(os.path.join(gate, str(os.getpid())), 'w').close()\n"
        "while len(os.listdir(gate)) < 4:\n    time.sleep(0.005)\n"
        "sys.argv = ['algnet', *sys.argv[2:]]; began = time.time()\n"
        "try:\n    app()\nfinally:\n    print(began, time.time())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(gate), "models", "import", str(ckpt), "--name", f"m{i}"],
            env={**os.environ, **isolated},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(4)
    ]
    assert all(p.wait(timeout=180) == 0 for p in procs)
    spans = [tuple(map(float, p.stdout.read().split()[-2:])) for p in procs]
    assert max(b for b, _ in spans) < min(e for _, e in spans), spans  # all four ran at the same time
    names = {e["name"] for e in json.loads((tmp_path / "cfg" / "models.json").read_text())["models"]}
    assert names == {f"m{i}" for i in range(4)}
    files = sorted(p.name for p in (tmp_path / "cache" / "imported").glob("*.safetensors"))
    sources = sorted(
        os.path.basename(e["source"]) for e in json.loads((tmp_path / "cfg" / "models.json").read_text())["models"]
    )
    assert files == sources  # no orphan


def test_a_registry_name_wins_over_a_file_and_a_broken_registry_does_not_block_a_path(tmp_path, isolated):
    ckpt = write_identity_checkpoint(tmp_path / "id.safetensors")
    other = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    assert algnet("models", "import", other, "--name", "model.safetensors", env=isolated).returncode == 0
    Image.fromarray(np.full((16, 16, 3), 77, np.uint8)).save(tmp_path / "a.png")
    os.symlink(ckpt, tmp_path / "model.safetensors")
    r = algnet("deblur", "a.png", "-o", "out/", "--model", "model.safetensors", "-q", env=isolated, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (np.asarray(Image.open(tmp_path / "out" / "a.png")) == 77).all()  # the entry, not the file
    r = algnet("deblur", "a.png", "-o", "out1/", "--model", "./model.safetensors", "-q", env=isolated, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (np.asarray(Image.open(tmp_path / "out1" / "a.png")) == 77).all()  # ./: the file
    (tmp_path / "cfg" / "models.json").write_text("{not json")
    r = algnet("deblur", "a.png", "-o", "out2/", "--model", "./model.safetensors", "-q", env=isolated, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_removing_an_entry_whose_file_fails_its_checksum_removes_the_file(tmp_path, isolated):
    ckpt = write_tiny_checkpoint(tmp_path / "m.safetensors")
    assert algnet("models", "import", ckpt, "--name", "m", env=isolated).returncode == 0
    (stored,) = (tmp_path / "cache" / "imported").glob("*.safetensors")
    stored.write_bytes(stored.read_bytes()[:-8] + b"garbage!")
    r = algnet("models", "rm", "m", env=isolated)
    assert r.returncode == 0, r.stderr
    assert not stored.exists()


# -- train ------------------------------------------------------------------------------------

TINY_ARGS = ["--width", "8", "--d-state", "4", "--patch", "32", "--batch", "1", "--val-every", "100", "--device", "cpu"]


def photo_folder(root):
    from skimage import data

    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()[:160, :160]).save(root / "good.png")
    Image.fromarray(data.coffee()[:160, :160]).save(root / "good2.jpg")
    return root


def test_train_checks_every_photo_before_step_1_and_reads_float_tiffs_in_range(tmp_path):
    from skimage import data

    from algnet_cli.train.datasets import SyntheticPairs

    photos = photo_folder(tmp_path / "photos")
    ga = np.dstack([data.camera()[:160, :160], np.full((160, 160), 200, np.uint8)])
    Image.fromarray(ga, "LA").save(photos / "grey_alpha.png")
    tifffile.imwrite(photos / "float.tif", data.chelsea()[:160, :160].astype(np.float32) / 255, photometric="rgb")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photos / "tiny.png")
    (photos / "empty.jpg").write_bytes(b"")
    ds = SyntheticPairs(photos, patch=32, length=4)
    refused = {os.path.basename(p): why for p, why in ds.refused}
    assert (
        set(refused) == {"tiny.png", "empty.jpg"} and "8x8" in refused["tiny.png"] and "empty" in refused["empty.jpg"]
    )
    images = [ds._photo(k) for k in range(len(ds.photos))]  # decoded on demand, as training reads them
    assert len(images) == 4 and all(im.shape[2] == 3 and im.dtype == np.uint8 for im in images)
    floats = [im for im in images if abs(int(im.max()) - int(data.chelsea()[:160, :160].max())) <= 1]
    assert floats  # the float TIFF keeps its real range (not divided by 255 twice)
    r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "1", *TINY_ARGS)
    assert r.returncode == 0, r.stderr
    assert "tiny.png" in r.stderr and "empty.jpg" in r.stderr and "training on 4 photos" in r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "-0.001"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--max-minutes", "-1"], "--max-minutes"),
        (["--name", "../escaped"], "--name"),
    ],
)
def test_train_options_that_cannot_work_are_usage_errors(tmp_path, args, words):
    photos = photo_folder(tmp_path / "photos")
    r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "1", *TINY_ARGS, *args)
    assert r.returncode == 2 and words in r.stderr and "internal error" not in r.stderr
    assert not (tmp_path / "escaped.safetensors").exists()


def test_train_data_mistakes_are_named_not_internal_errors(tmp_path):
    for folder, what in ((tmp_path / "missing", "no such folder"), (tmp_path / "empty", "no photos")):
        if what == "no photos":
            folder.mkdir()
        r = algnet("train", "--photos", folder, "-o", tmp_path / "run", *TINY_ARGS)
        assert r.returncode == 2 and str(folder) in r.stderr and what in r.stderr, r.stderr
    (tmp_path / "pairs" / "x").mkdir(parents=True)
    r = algnet("train", "--paired", tmp_path / "pairs", "-o", tmp_path / "run", *TINY_ARGS)
    assert r.returncode == 2 and "blur/ and sharp/" in r.stderr
    tiny = tmp_path / "tinyphotos"
    tiny.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny / "t.png")
    r = algnet("train", "--photos", tiny, "-o", tmp_path / "run", *TINY_ARGS)
    assert r.returncode == 2 and "8x8" in r.stderr and "internal error" not in r.stderr


def test_paired_training_refuses_mismatched_and_small_pairs_before_step_1(tmp_path):
    from skimage import data

    root = tmp_path / "pairs" / "seq"
    for kind in ("blur", "sharp"):
        (root / kind).mkdir(parents=True)
    img = data.astronaut()[:96, :96]
    for name in ("a", "b"):
        Image.fromarray(img).save(root / "sharp" / f"{name}.png")
        Image.fromarray(img // 2).save(root / "blur" / f"{name}.png")
    Image.fromarray(img[:80]).save(root / "sharp" / "c.png")  # another size than its partner
    Image.fromarray(img // 2).save(root / "blur" / "c.png")
    Image.fromarray(img[:20, :20]).save(root / "sharp" / "d.png")  # smaller than --patch
    Image.fromarray(img[:20, :20]).save(root / "blur" / "d.png")
    Image.fromarray(img).save(root / "blur" / "lonely.png")
    r = algnet("train", "--paired", tmp_path / "pairs", "-o", tmp_path / "run", "--steps", "4", *TINY_ARGS[:-2],
               "--batch", "2", "--device", "cpu")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        "c.png" in r.stderr and "d.png" in r.stderr and "lonely.png" in r.stderr and "training on 2 pairs" in r.stderr
    )
    card = json.loads((tmp_path / "run" / "model.card.json").read_text())
    assert "real pairs" in card["data"]["blur"]


def test_divergence_stops_with_a_reason_and_exports_nothing_non_finite(tmp_path):
    photos = photo_folder(tmp_path / "photos")
    r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "30", "--lr", "1e6",
               "--ckpt-every", "1", *TINY_ARGS)  # fmt: skip
    assert r.returncode == 1 and "loss became" in r.stderr and "internal error" not in r.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
    import torch

    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_run_folder_of_another_configuration_and_a_damaged_last_pt_are_one_line(tmp_path):
    photos = photo_folder(tmp_path / "photos")
    assert algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "1", *TINY_ARGS).returncode == 0
    r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "2", *TINY_ARGS, "--width", "16")
    assert r.returncode == 2 and "another configuration" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    last = tmp_path / "run" / "last.pt"
    for damage, words in ((b"", "empty file"), (b"garbage" * 100, "not a readable training checkpoint")):
        last.write_bytes(damage)
        r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "2", *TINY_ARGS)
        assert r.returncode == 1 and str(last) in r.stderr and words in r.stderr
        assert "weights_only" not in r.stderr


def test_a_resumed_run_says_what_changed_and_a_finished_timed_run_trains_no_more(tmp_path):
    photos = photo_folder(tmp_path / "photos")
    assert algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "1", *TINY_ARGS).returncode == 0
    r = algnet("train", "--photos", photos, "-o", tmp_path / "run", "--steps", "2", "--lr", "0.0005", *TINY_ARGS)
    assert r.returncode == 0 and "lr 0.001 -> 0.0005" in r.stderr and "steps 1 -> 2" in r.stderr
    card = json.loads((tmp_path / "run" / "model.card.json").read_text())
    assert "lr 0.001 -> 0.0005" in card["resumed_with_changes"]
    timed = ["--photos", photos, "-o", tmp_path / "timed", "--steps", "1000", "--max-minutes", "0.0001", *TINY_ARGS]
    assert algnet("train", *timed).returncode == 0
    first = json.loads((tmp_path / "timed" / "model.card.json").read_text())["iterations"]
    assert algnet("train", *timed).returncode == 0
    assert json.loads((tmp_path / "timed" / "model.card.json").read_text())["iterations"] == first


# -- score ------------------------------------------------------------------------------------


def pair_folders(tmp_path, side=96, shift=0, names=("a.png",)):
    from skimage import data

    img = data.astronaut()
    for kind in ("pred", "gt"):
        (tmp_path / kind).mkdir(exist_ok=True)
    for name in names:
        Image.fromarray(img[100 : 100 + side, 150 : 150 + side]).save(tmp_path / "gt" / name)
        Image.fromarray(img[100 + shift : 100 + shift + side, 150 + shift : 150 + shift + side]).save(
            tmp_path / "pred" / name
        )
    return tmp_path / "pred", tmp_path / "gt"


def test_realblur_refuses_pairs_too_small_to_align_and_aligns_shifted_ones(tmp_path):
    from skimage import data

    from algnet_cli.metrics import Protocol, psnr, score

    small = data.astronaut()[100:110, 150:160]
    with pytest.raises(Exception, match="smaller than the 64 px"):
        score(small, small, Protocol("realblur"))
    pred, gt = pair_folders(tmp_path, side=10)
    r = algnet("score", pred, gt, "--protocol", "realblur")
    assert r.returncode == 1 and "a.png" in r.stderr and "64 px" in r.stderr
    img = data.astronaut()
    a, b = img[60:124, 30:94], img[61:125, 31:95]  # one pixel apart
    aligned, _ = score(a, b, Protocol("realblur"))
    assert aligned > psnr(a, b) + 10


def test_report_paths_are_checked_before_scoring(tmp_path):
    pred, gt = pair_folders(tmp_path)
    (tmp_path / "afile").write_text("x")
    r = algnet("score", pred, gt, "--csv", tmp_path / "afile" / "s.csv")
    assert r.returncode == 2 and "afile is a file, not a folder" in r.stderr and "File exists" not in r.stderr
    from helpers.users import ordinary_user

    with ordinary_user(tmp_path) as home:  # root, too, is stopped by the mode within
        pred, gt = pair_folders(home)
        locked = home / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert not os.access(locked, os.W_OK, effective_ids=True)
            r = algnet("score", pred, gt, "--csv", locked / "s.csv", "--report-json", home / "s.json")
            assert r.returncode == 2 and "locked" in r.stderr and not (home / "s.json").exists()
        finally:
            locked.chmod(0o700)


def test_one_sheet_that_cannot_be_written_is_named_and_scoring_goes_on(tmp_path, monkeypatch):
    from helpers.cli import run_cli

    import algnet_cli.compare as compare

    pred, gt = pair_folders(tmp_path, names=("a.png", "b.png"))
    sheets = tmp_path / "sheets"
    real = compare.write_sheet

    def write_sheet(path, *a, **k):
        if path.name == "a.png":  # this one sheet fails when it is written, as on a full disk
            raise OSError(28, "No space left on device")
        return real(path, *a, **k)

    monkeypatch.setattr(compare, "write_sheet", write_sheet)
    code, _, err = run_cli("score", pred, gt, "--compare", sheets, "--report-json", tmp_path / "s.json")
    assert "a.png" in err and "comparison sheet" in err and "No space left" in err
    assert (sheets / "b.png").is_file() and json.loads((tmp_path / "s.json").read_text())["summary"]["pairs"] == 2


def test_grey_pairs_score_with_y_channel_and_a_crop_border_too_large_is_named(tmp_path):
    from skimage import data

    from algnet_cli.metrics import Protocol, score

    grey = data.camera()[:64, :64]
    p, s = score(grey, grey, Protocol("basicsr", 0, True))
    assert p == float("inf") and s == pytest.approx(1.0)
    with pytest.raises(Exception, match="--crop-border 32 is too large"):
        score(grey, grey, Protocol("basicsr", 32, False))


def test_an_unreachable_hub_fails_in_seconds_in_one_line(tmp_path, isolated):
    t0 = time.monotonic()
    r = algnet("models", "pull", "hf://owner/repo/m.safetensors", env={**isolated, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert time.monotonic() - t0 < 5 + 4  # the run, plus this interpreter's start-up
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "--offline" in r.stderr


def test_doctor_does_not_call_a_cache_of_empty_files_compiled(tmp_path):
    from algnet_cli.ops import scan_fused

    cache = tmp_path / "kernels" / "ops_x"
    cache.mkdir(parents=True)
    for name in (
        "scan_forward-1.py311.nbi",
        "scan_forward-1.py311.1.nbc",
        "scan_backward-2.py311.nbi",
        "scan_backward-2.py311.1.nbc",
    ):
        (cache / f"_numba_kernels.{name}").write_bytes(b"")
    assert not scan_fused._cached(tmp_path / "kernels")
    r = algnet("doctor", env={"ALGNET_KERNEL_CACHE": str(tmp_path / "kernels")})
    assert "not compiled yet" in r.stdout
    for p in cache.iterdir():
        p.write_bytes(b"x" * 64)
    assert scan_fused._cached(tmp_path / "kernels")


def test_a_killed_runs_temporaries_go_and_model_names_take_any_script(tmp_path, isolated):
    import socket

    photos = photo_folder(tmp_path / "photos")
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that is gone: its temporaries are stale
    stale = run / f".algnet-tmp-{socket.gethostname()}~{dead.pid}~abc.pt"
    stale.write_bytes(b"half a checkpoint")
    assert algnet("train", "--photos", photos, "-o", run, "--steps", "1", *TINY_ARGS).returncode == 0
    assert not stale.exists()
    ckpt = write_tiny_checkpoint(tmp_path / "m.safetensors")
    for name in ("模型", "modèle-ü"):
        r = algnet("models", "import", ckpt, "--name", name, env=isolated)
        assert r.returncode == 0, r.stderr
    assert algnet("models", "import", ckpt, "--name", "../x", env=isolated).returncode == 2
