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
from helpers.cli import write_identity_checkpoint, write_tiny_checkpoint
from PIL import Image


def algnet(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "algnet_cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)  # fmt: skip


@pytest.fixture
def isolated(tmp_path):
    return {"ALGNET_CONFIG_DIR": str(tmp_path / "cfg"), "ALGNET_CACHE_DIR": str(tmp_path / "cache")}


def test_concurrent_imports_all_end_in_the_registry_with_no_orphan(tmp_path, isolated):
    ckpt = write_tiny_checkpoint(tmp_path / "m.safetensors")
    start = time.time() + 4  # released at the same moment
    code = (
        "import sys, time; t = float(sys.argv[1]); time.sleep(max(0, t - time.time())); "
        "from algnet_cli.cli import app; sys.argv = ['algnet', *sys.argv[2:]]; app()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(start), "models", "import", str(ckpt), "--name", f"m{i}"],
            env={**os.environ, **isolated},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(8)
    ]
    assert all(p.wait(timeout=180) == 0 for p in procs)
    names = {e["name"] for e in json.loads((tmp_path / "cfg" / "models.json").read_text())["models"]}
    assert names == {f"m{i}" for i in range(8)}
    files = sorted(p.name for p in (tmp_path / "cache" / "imported").glob("*.safetensors"))
    sources = sorted(
        os.path.basename(e["source"]) for e in json.loads((tmp_path / "cfg" / "models.json").read_text())["models"]
    )
    assert files == sources  # no orphan


def test_an_existing_file_wins_over_a_registry_name_and_a_broken_registry_does_not_block_it(tmp_path, isolated):
    ckpt = write_identity_checkpoint(tmp_path / "id.safetensors")
    other = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    assert algnet("models", "import", other, "--name", "model.safetensors", env=isolated).returncode == 0
    Image.fromarray(np.full((16, 16, 3), 77, np.uint8)).save(tmp_path / "a.png")
    os.symlink(ckpt, tmp_path / "model.safetensors")
    r = algnet("deblur", "a.png", "-o", "out/", "--model", "model.safetensors", "-q", env=isolated, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (np.asarray(Image.open(tmp_path / "out" / "a.png")) == 77).all()  # the identity file, not the entry
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
