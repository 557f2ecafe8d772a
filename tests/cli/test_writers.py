"""Every path a command writes is claimed from one owner before any work: no writer option of any
command may replace an input, write into an input or ground-truth folder, or into a folder of the
user's (one algnet did not write) without --overwrite. Each case checks the exit code and the
sha256 of every file the user owns, before and after."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli, write_identity_checkpoint
from helpers.videos import make_video
from PIL import Image


def _png(path: Path, seed: int, side: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.relative_to(root).parts
    }


@pytest.fixture
def world(tmp_path, monkeypatch):
    """photos/ (and photos/sub/), gt/, pred/, vids/clip.mp4, user/ (a folder of the user's), a model."""
    root = tmp_path / "w"
    for i, name in enumerate(("photos/a.png", "photos/b.png", "photos/sub/c.png", "gt/a.png", "gt/b.png")):
        _png(root / name, i)
    for i, name in enumerate(("pred/a.png", "pred/b.png")):
        _png(root / name, 10 + i)
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("mine\n")
    _png(root / "user" / "x.png", 20)
    (root / "vids").mkdir()
    make_video(root / "vids" / "clip.mp4", 32, 32, list(range(0, 200, 40)), audio=None)
    model = write_identity_checkpoint(tmp_path / "id.safetensors")
    monkeypatch.chdir(root)
    monkeypatch.setenv("ALGNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ALGNET_CONFIG_DIR", str(tmp_path / "cfg"))
    return root, model


def _deblur(model, *args):
    return ["deblur", *args, "--model", model, "--device", "cpu", "-q"]


def _cases(model):
    """(command, a word the refusal must hold): every writer option against an input file, an input
    folder, a ground-truth folder (or file) and the user's non-empty folder (or a file in it)."""
    d = lambda *a: _deblur(model, *a)  # noqa: E731
    return [
        # deblur -o
        (d("photos/", "-o", "photos/"), "photos"),
        (d("photos/", "-r", "-o", "photos/sub/"), "inside"),
        (d("photos/", "-o", "gt/", "--gt", "gt/"), "ground truth"),
        (d("photos/", "-o", "user/"), "user"),
        (d("photos/a.png", "-o", "gt/b.png", "--gt", "gt/"), "ground truth"),
        # deblur --preview
        (d("photos/", "--preview", "photos/b.png"), "photos/b.png"),
        (d("photos/", "--preview", "photos/"), "photos"),
        (d("photos/", "--preview", "gt/b.png", "--gt", "gt/"), "gt/b.png"),
        (d("photos/", "--preview", "user/x.png"), "user/x.png"),
        # deblur --frames-out
        (d("vids/", "--frames-out", "vids/"), "vids"),
        (d("vids/clip.mp4", "--frames-out", "vids/clip.mp4"), "vids/clip.mp4"),
        (d("vids/", "--frames-out", "gt/", "--gt", "gt/"), "gt"),
        (d("vids/", "--frames-out", "user/"), "user"),
        # deblur --to-video
        (d("photos/", "--to-video", "photos/a.png"), "photos/a.png"),
        (d("photos/", "--to-video", "photos/"), "photos"),
        (d("photos/", "--to-video", "gt/", "--gt", "gt/"), "gt"),
        (d("photos/", "--to-video", "user/"), "user"),
        # triage --csv
        (["triage", "photos/", "--csv", "photos/a.png"], "photos/a.png"),
        (["triage", "photos/", "--csv", "photos/"], "photos"),
        (["triage", "photos/", "--csv", "gt/b.png"], "gt/b.png"),
        (["triage", "photos/", "--csv", "user/notes.txt"], "user/notes.txt"),
        # score reports and sheets
        *[
            (["score", "pred/", "gt/", flag, target], target.rstrip("/"))
            for flag in ("--csv", "--report-json", "--markdown")
            for target in ("pred/a.png", "pred/", "gt/b.png", "user/notes.txt")
        ],
        (["score", "pred/", "gt/", "--compare", "pred/"], "pred"),
        (["score", "pred/", "gt/", "--compare", "gt/"], "gt"),
        (["score", "pred/", "gt/", "--compare", "pred/sub/"], "inside"),
        (["score", "pred/", "gt/", "--compare", "user/"], "user"),
        (["score", "pred/", "gt/", "--compare", "pred/a.png"], "pred/a.png"),
        # train -o
        (["train", "--photos", "photos/", "-o", "photos/", "--steps", "1"], "photos"),
        (["train", "--photos", "photos/", "-o", "photos/run/", "--steps", "1"], "inside"),
        (["train", "--photos", "photos/", "-o", "gt/", "--steps", "1"], "gt"),
        (["train", "--photos", "photos/", "-o", "user/", "--steps", "1"], "user"),
        (["train", "--photos", "photos/", "-o", "photos/a.png", "--steps", "1"], "photos/a.png"),
    ]


def test_every_writer_option_refuses_inputs_and_the_users_folders(world):
    root, model = world
    before = _hashes(root)
    for args, word in _cases(str(model)):
        code, out, err = run_cli(*args)
        assert code == 2, (args, code, out, err)
        assert "usage error" in err and word in err, (args, err)
        assert _hashes(root) == before, args  # nothing replaced, nothing written


def test_frames_out_never_touches_the_users_frames(world):
    """The user's own numbered frames in fo/clip/, no manifest: refused; with --overwrite only the
    frames the clip has are replaced, the others stay."""
    root, model = world
    user_frames = root / "fo" / "clip"
    for name in ("000001.png", "000099.png", "123456.png"):
        _png(user_frames / name, 30)
    before = _hashes(root)
    code, _, err = run_cli(*_deblur(model, "vids/clip.mp4", "--frames-out", "fo/"))
    assert code == 2 and "fo" in err and "--overwrite" in err
    assert _hashes(root) == before
    code, _, err = run_cli(*_deblur(model, "vids/clip.mp4", "--frames-out", "fo/", "--overwrite"))
    assert code == 0, err
    after = _hashes(root)
    assert after["fo/clip/000099.png"] == before["fo/clip/000099.png"]
    assert after["fo/clip/123456.png"] == before["fo/clip/123456.png"]
    assert after["fo/clip/000001.png"] != before["fo/clip/000001.png"]  # a frame the clip has: replaced
    assert {k: v for k, v in after.items() if not k.startswith("fo/")} == before_inputs(before)


def before_inputs(hashes: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in hashes.items() if not k.startswith("fo/")}


def test_a_run_resumes_into_its_own_folder_and_reports_are_replaced_when_algnet_wrote_them(world):
    root, model = world
    assert run_cli(*_deblur(model, "photos/", "-o", "out/"))[0] == 0
    record = json.loads((root / "out" / "algnet-run.json").read_text())
    assert record["status"] == "finished"
    code, _, err = run_cli(*_deblur(model, "photos/", "-o", "out/"))  # the folder is algnet's: resumes
    assert code == 0, err
    for args in (["triage", "photos/", "--csv", "t.csv"], ["score", "pred/", "gt/", "--csv", "s.csv", "--report-json",
                 "s.json", "--markdown", "s.md", "--compare", "sheets/"]):  # fmt: skip
        assert run_cli(*args)[0] == 0
        code, _, err = run_cli(*args)  # a second time: its own files are replaced
        assert code == 0, (args, err)
    before = _hashes(root)
    code, _, err = run_cli(*_deblur(model, "photos/", "--preview", "user/x.png", "--overwrite"))
    assert code == 0, err  # --overwrite: the user asked for that file to be replaced
    assert _hashes(root)["user/x.png"] != before["user/x.png"]
    assert {k: v for k, v in _hashes(root).items() if k != "user/x.png"} == {
        k: v for k, v in before.items() if k != "user/x.png"
    }


def test_a_started_run_marks_its_folder_before_any_output(world, monkeypatch):
    """A run interrupted before its end can be resumed into its folder: the record is written first."""
    root, model = world
    import algnet_cli.batch.run as run

    seen = {}
    real = run._run_planned

    def spy(plan, *a, **k):
        seen["record"] = json.loads((root / "out" / "algnet-run.json").read_text())
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_run_planned", spy)
    code, _, _ = run_cli(*_deblur(model, "photos/", "-o", "out/"))
    monkeypatch.setattr(run, "_run_planned", real)
    assert seen["record"]["status"] == "started"
    assert code == 130  # interrupted: and its record says so
    assert json.loads((root / "out" / "algnet-run.json").read_text())["status"] == "interrupted"
    code, _, err = run_cli(*_deblur(model, "photos/", "-o", "out/"))
    assert code == 0, err


def test_score_sheets_whose_names_meet_are_all_kept(world):
    root, _ = world
    for i, name in enumerate(("p/x/y.png", "p/x__y.png", "p/a.png", "p/a.tif")):
        _png(root / name, 40 + i)
    for i, name in enumerate(("g/x/y.png", "g/x__y.png", "g/a.png", "g/a.tif")):
        _png(root / name, 40 + i)
    code, _, err = run_cli("score", "p/", "g/", "--compare", "sheets/")
    assert code == 0, err
    sheets = sorted(p.name for p in (root / "sheets").glob("*.png"))
    assert len(sheets) == 4, sheets


def test_train_never_replaces_its_init_checkpoint_and_one_folder_holds_one_training(world):
    root, model = world
    (root / "mymodels").mkdir()
    init = root / "mymodels" / "model.safetensors"
    init.write_bytes(Path(model).read_bytes())
    before = _hashes(root)
    args = ["train", "--photos", "photos/", "-o", "mymodels", "--init", init, "--steps", "1", "--device", "cpu"]
    code, _, err = run_cli(*args)
    assert code == 2 and "mymodels" in err
    code, _, err = run_cli(*args, "--overwrite")
    assert code == 2 and "--init" in err and "model.safetensors" in err
    assert _hashes(root) == before
    from filelock import FileLock

    (root / "run").mkdir()
    with FileLock(str(root / "run" / ".algnet-train.lock")):
        code, _, err = run_cli("train", "--photos", "photos/", "-o", "run", "--steps", "1", "--device", "cpu")
    assert code == 2 and "another training" in err


def test_models_rm_deletes_only_what_the_cache_owns(world, tmp_path):
    root, model = world
    mine = root / "w" / "mine.safetensors"
    mine.parent.mkdir()
    mine.write_bytes(Path(model).read_bytes())
    # a registered checkpoint of the user's own, outside the cache
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    from algnet_cli.fileio import sha256_file

    entry = {"name": "mine", "source": str(mine), "sha256": sha256_file(mine), "config": {}}
    (cfg / "models.json").write_text(json.dumps({"models": [entry]}))
    # an imported model whose name is also a file in the working folder
    assert run_cli("models", "import", model, "--name", "ALGNet_GoPro.pth")[0] == 0
    (root / "ALGNet_GoPro.pth").write_bytes(b"the user's own file")
    (root / "default").write_bytes(b"another file of the user's")
    before = _hashes(root)
    code, out, err = run_cli("models", "rm", "ALGNet_GoPro.pth")
    assert code == 0, err
    code, out, err = run_cli("models", "rm", "mine")
    assert code == 0, err
    assert "stays" in out
    assert _hashes(root) == before  # the working folder's files and the registered file all stay
    assert not list((tmp_path / "cache" / "imported").glob("*"))  # the cached copy is gone, no orphan
    code, _, err = run_cli("models", "import", model, "--name", "default", "--force")
    assert code == 2 and "alias" in err


def test_the_python_api_refuses_its_input_and_an_existing_file(world):
    root, model = world
    from algnet_cli import Deblurrer
    from algnet_cli.errors import UsageError

    d = Deblurrer(model=str(model), device="cpu", quiet=True)
    before = _hashes(root)
    with pytest.raises(UsageError):
        d.deblur_file(root / "photos" / "a.png", root / "photos" / "a.png")
    os.link(root / "photos" / "a.png", root / "hard.png")
    with pytest.raises(ValueError):  # a hard link to the input is the input
        d.deblur_file(root / "photos" / "a.png", root / "hard.png", overwrite=True)
    with pytest.raises(UsageError):
        d.deblur_file(root / "photos" / "a.png", root / "photos" / "b.png")
    assert {k: v for k, v in _hashes(root).items() if k != "hard.png"} == before
    d.deblur_file(root / "photos" / "a.png", root / "new.png")
    assert (root / "new.png").exists()


def test_a_suffix_with_a_folder_and_a_preview_dry_run_write_nothing(world):
    root, model = world
    before = _hashes(root)
    code, _, err = run_cli(*_deblur(model, "photos/", "-o", "out/", "--suffix=/x"))
    assert code == 2 and "--suffix" in err
    code, out, err = run_cli(*_deblur(model, "photos/", "--preview", "new/sheet.png", "--dry-run"))
    assert code == 0 and "would write new/sheet.png" in out, err
    assert _hashes(root) == before and not (root / "out").exists() and not (root / "new").exists()


def test_frame_folders_next_to_image_outputs_are_resumed(world):
    """Images to -o, videos to --frames-out: the run record goes to -o, and the frames folder is
    still known as algnet's on the second run by its frame folders' records."""
    root, model = world
    (root / "mixed").mkdir()
    (root / "mixed" / "a.png").write_bytes((root / "photos" / "a.png").read_bytes())
    (root / "mixed" / "clip.mp4").write_bytes((root / "vids" / "clip.mp4").read_bytes())
    args = _deblur(model, "mixed/", "-o", "out/", "--frames-out", "fo/")
    assert run_cli(*args)[0] == 0
    assert (root / "fo" / "clip" / ".algnet-frames.json").exists() and not (root / "fo" / "algnet-run.json").exists()
    code, _, err = run_cli(*args)
    assert code == 0, err


@pytest.fixture
def full_disk(tmp_path):
    """A tmpfs with no room left (root only), unmounted afterwards."""
    from helpers.disk import small_tmpfs

    with small_tmpfs(tmp_path / "full", "64k", full=True) as mnt:
        yield mnt


def test_a_full_disk_under_a_report_or_a_sheet_is_one_plain_sentence_naming_the_path(world, full_disk):
    root, model = world
    for args, target in (
        (["triage", "photos/", "--csv", full_disk / "t.csv"], full_disk / "t.csv"),
        (_deblur(model, "photos/", "--preview", full_disk / "s.png"), full_disk / "s.png"),
    ):
        code, out, err = run_cli(*map(str, args))
        assert code == 1, (args, out, err)
        line = err.strip().splitlines()[-1]
        assert line == f"algnet: file error: {target}: cannot write it: No space left on device", line
        assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # nothing half-written


def test_an_unwritable_report_is_one_plain_sentence_naming_the_path(tmp_path):
    from helpers.users import ordinary_user

    with ordinary_user(tmp_path) as home:  # root, too, is stopped by the mode within
        _png(home / "photos" / "a.png", 0)
        locked = home / "locked"
        locked.mkdir(mode=0o000)
        try:
            code, out, err = run_cli("triage", home / "photos", "--csv", str(locked / "t.csv"))
            assert code in (1, 2) and str(locked) in err and "Permission denied" in err and "Traceback" not in err
        finally:
            locked.chmod(0o755)
    assert not (locked / "t.csv").exists()


def test_train_init_takes_what_model_takes(world):
    root, model = world
    code, _, err = run_cli("train", "--photos", "photos/", "-o", "ft", "--init", "no-such-model", "--steps", "1")
    assert code != 0 and "no registered model of that name" in err and "Traceback" not in err
    for i in range(2):
        _png(root / "big" / f"{i}.png", 30 + i, side=160)
    args = ["train", "--photos", "big/", "-o", "ft", "--init", "default", "--steps", "1", "--patch", "64",
            "--batch", "1", "--device", "cpu", "-q"]  # fmt: skip
    code, _, err = run_cli(*args)
    assert code == 0, err
    card = json.loads(next((root / "ft").glob("*.card.json")).read_text())
    assert "algnet-small" in json.dumps(card) or "default" in json.dumps(card)
