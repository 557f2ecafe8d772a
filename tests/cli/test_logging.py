"""What the command prints on stderr: -q errors only, the default adds notes and warnings, -v adds what
runs; every line starts with `algnet:`."""

from __future__ import annotations

import logging

import numpy as np
import tifffile
from helpers.cli import run_cli, write_identity_checkpoint


def _inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    # a 16-bit image written as JPEG: a note says it became 8-bit
    tifffile.imwrite(src / "deep.tif", np.random.default_rng(0).integers(0, 65535, (40, 40, 3), dtype=np.uint16))
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png")  # fails: named, the batch goes on
    return src


def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def test_quiet_prints_errors_only_and_every_line_is_prefixed(tmp_path, monkeypatch):
    model = write_identity_checkpoint(tmp_path / "id.safetensors")
    src = _inputs(tmp_path)
    base = ["deblur", src, "--model", model, "--device", "cpu", "--format", "jpg"]
    code, _, err = run_cli(*base, "-o", tmp_path / "a")
    assert code == 1
    assert any("note:" in ln and "deep.tif" in ln for ln in _lines(err)), err
    assert any("failed" in ln and "bad.png" in ln for ln in _lines(err)), err
    assert all(ln.startswith("algnet:") for ln in _lines(err)), err
    assert "scan backend" not in err  # info: only with -v

    code, _, err = run_cli(*base, "-o", tmp_path / "b", "-q")
    assert code == 1
    lines = _lines(err)
    assert lines and all(ln.startswith("algnet:") and "bad.png" in ln for ln in lines), err  # the failure, only

    # a library warning (the kernel compile notice, an OOM split) follows -q too
    monkeypatch.setattr("algnet_cli.api._log.info", lambda *a: logging.getLogger("algnet_cli.runner").warning("W!"))
    assert "algnet: W!" in run_cli(*base, "-o", tmp_path / "c")[2]
    assert "W!" not in run_cli(*base, "-o", tmp_path / "d", "-q")[2]


def test_verbose_says_what_runs(tmp_path):
    model = write_identity_checkpoint(tmp_path / "id.safetensors")
    src = _inputs(tmp_path)
    (src / "bad.png").unlink()
    code, _, err = run_cli("deblur", src, "-o", tmp_path / "o", "--model", model, "--device", "cpu", "-v")
    assert code == 0, err
    line = next(ln for ln in _lines(err) if "scan backend" in ln)
    assert line.startswith("algnet: model ") and "on cpu" in line and "precision fp32" in line
