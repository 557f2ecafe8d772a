"""`algnet doctor` and the registry say what is wrong, one line each, and nothing ends in an internal error."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers.cli import run_cli


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("ALGNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ALGNET_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("ALGNET_KERNEL_CACHE", str(tmp_path / "kernels"))
    (tmp_path / "cfg").mkdir()
    return tmp_path


def _registry(dirs, text: str):
    from algnet_cli.hub import user_registry_path

    path = user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_hand_edits_give_one_line_naming_the_file_and_the_entry(dirs, tmp_path):
    ckpt = tmp_path / "mine.safetensors"
    ckpt.write_bytes(b"x")
    good = {"name": "mine", "source": str(ckpt)}
    doc = {"models": [good, {"name": "typed", "source": 5}, {"name": "extra", "source": str(ckpt), "colour": 1},
                      "not an object"]}  # fmt: skip
    path = _registry(dirs, "\ufeff" + json.dumps(doc))  # with a byte-order mark
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    code, out, err = run_cli("models", "list")
    assert code == 0, err
    assert "mine" in out and "extra" in out  # the good entries stay usable; an unknown key is ignored
    lines = [ln for ln in err.splitlines() if str(path) in ln]
    assert any("'typed'" in ln and "source must be text" in ln for ln in lines), err
    assert any("'extra'" in ln and "unknown key colour" in ln for ln in lines), err
    assert any("entry 4" in ln and "not an object" in ln for ln in lines), err
    assert "internal error" not in err and "Traceback" not in err
    code, out, err = run_cli("doctor")
    assert code == 0 and "problem:" in out and "source must be text" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # reading never rewrites it


def test_a_default_that_names_nothing_says_so(dirs):
    _registry(dirs, json.dumps({"default": "nothere", "models": []}))
    from PIL import Image

    Image.new("RGB", (8, 8)).save(dirs / "x.png")
    code, out, err = run_cli("deblur", dirs / "x.png", "-o", dirs / "out", "--dry-run")
    assert code != 0 and "'nothere'" in err and "not a registered model" in err and "internal error" not in err


def test_a_registry_that_is_not_json_is_named_and_never_written_over(dirs, tmp_path):
    path = _registry(dirs, "{ not json")
    ckpt = tmp_path / "m.safetensors"
    from helpers.cli import write_tiny_checkpoint

    write_tiny_checkpoint(ckpt)
    code, out, err = run_cli("models", "import", ckpt, "--name", "m")
    assert code == 2 and str(path) in err and "not valid JSON" in err
    assert path.read_text() == "{ not json"


def test_doctor_names_a_disabled_jit_an_unwritable_or_damaged_kernel_cache(dirs, monkeypatch):
    kernels = dirs / "kernels" / "ops_x"
    kernels.mkdir(parents=True)
    (kernels / "_numba_kernels.scan_forward-1.py311.nbi").write_bytes(b"")  # empty: a full disk's leftovers
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    code, out, err = run_cli("doctor")
    assert code == 0, err
    assert "NUMBA_DISABLE_JIT is set" in out and "damaged" in out
    from algnet_cli.ops import resolve_backend

    assert resolve_backend("auto", "cpu") == "chunked"  # never numba's plain-Python mode
    monkeypatch.delenv("NUMBA_DISABLE_JIT")
    blocker = dirs / "file"
    blocker.write_text("a file where the cache's folder would be")
    monkeypatch.setenv("ALGNET_KERNEL_CACHE", str(blocker / "kernels"))
    code, out, err = run_cli("doctor")
    assert "cannot be written" in out and "ALGNET_KERNEL_CACHE" in out


def test_a_reader_that_goes_away_ends_the_command_quietly(dirs):
    import os
    import subprocess
    import sys

    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "algnet_cli", "models", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)  # fmt: skip
    proc.stdout.close()  # before the command has written a byte (it is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err  # quiet; 1: not all of the output arrived


def test_special_files_get_one_clear_sentence(dirs):
    code, out, err = run_cli("score", "/dev/null", "/dev/null")
    assert code == 2 and err.strip() == (
        "algnet: usage error: /dev/null: not a regular file (a character device); give two folders or two image files"
    )
    code, out, err = run_cli("models", "import", "/dev/null", "--name", "x")
    assert code != 0 and err.strip().endswith("/dev/null: not a regular file (a character device)"), err
    assert "(not a regular file" not in err


def test_a_long_listing_into_a_closed_pipe_ends_quietly(tmp_path):
    import re
    import subprocess
    import sys

    from PIL import Image

    for i in range(1200):  # rows enough to outgrow the pipe's buffer (64 KiB)
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    cmd = f"{sys.executable} -m algnet_cli triage {tmp_path} | head -1 > /dev/null; echo ${{PIPESTATUS[0]}}"
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    said = [  # progress lines aside
        ln
        for ln in run.stderr.splitlines()
        if (ln.startswith("algnet:") and not re.match(r"algnet: \[\d+/\d+\]", ln)) or "Error" in ln
    ]
    assert said == [] and run.stdout.strip() == "1", run.stderr[-500:]


def test_models_import_refuses_what_deblur_would(dirs, tmp_path):
    import torch
    from helpers.cli import TINY
    from helpers.seeded_weights import seeded_state_dict

    from algnet_cli.model import ALGNet
    from algnet_cli.model.checkpoint import save_safetensors

    sd = seeded_state_dict(ALGNet(TINY).state_dict(), 3)
    cases = {
        "extra": ({**sd, "head.extra": torch.zeros(3)}, "head.extra"),
        "missing": ({k: v for k, v in list(sd.items())[1:]}, "missing"),
        "nan": ({**sd, "ending.bias": sd["ending.bias"] * float("nan")}, "NaN"),
        "integer": ({k: (v * 100).to(torch.int8) for k, v in sd.items()}, "integer"),
    }
    for name, (state, word) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_safetensors(state, path)
        code, out, err = run_cli("models", "import", path, "--name", name)
        assert code != 0 and word in err and "weights_only" not in err and "Traceback" not in err, (name, err)
    save_safetensors(sd, tmp_path / "named-wrong.pth")  # safetensors bytes under a .pth name: read as what it is
    code, out, err = run_cli("models", "import", tmp_path / "named-wrong.pth", "--name", "ok")
    assert code == 0, err
    code, out, err = run_cli("models", "import", tmp_path / "named-wrong.pth", "--name", "default", "--force")
    assert code == 2 and "alias" in err
