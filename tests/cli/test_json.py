"""`--json` means one thing in every command: the result as JSON on stdout, nothing else there.
Report files have their own options (`score --report-json PATH`)."""

from __future__ import annotations

import json

import numpy as np
from helpers.cli import run_cli, write_identity_checkpoint
from PIL import Image


def _png(path, seed, side=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def test_every_command_prints_parseable_json_on_stdout_and_only_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALGNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ALGNET_CONFIG_DIR", str(tmp_path / "cfg"))
    model = write_identity_checkpoint(tmp_path / "id.safetensors")
    for i, name in enumerate(("in/a.png", "in/b.png", "gt/a.png", "gt/b.png")):
        _png(tmp_path / name, i)
    commands = {
        "deblur": ["deblur", "in/", "-o", "out/", "--model", model, "--device", "cpu", "--json"],
        "triage": ["triage", "in/", "--json"],
        "score": ["score", "in/", "gt/", "--json"],
        "doctor": ["doctor", "--json"],
        "models list": ["models", "list", "--json"],
        "models info": ["models", "info", model, "--json"],
    }
    docs = {}
    for label, args in commands.items():
        code, out, err = run_cli(*args)
        assert code in (0, 1), (label, err)
        docs[label] = json.loads(out)  # the whole of stdout is one JSON document
    assert docs["deblur"]["deblurred"] == 2 and docs["deblur"]["failed"] == 0
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in docs["triage"]["rows"]) == ["a.png", "b.png"]
    assert [p["name"] for p in docs["score"]["pairs"]] == ["a.png", "b.png"]
    assert docs["doctor"]["torch"] and isinstance(docs["doctor"]["problems"], list)
    assert "algnet-small" in [m["name"] for m in docs["models list"]["models"]]
    assert docs["models info"]["tensors"] > 100 and len(docs["models info"]["sha256"]) == 64
    assert not (tmp_path / "-q").exists()


def test_score_writes_its_json_report_with_report_json_and_json_is_a_flag(tmp_path):
    for i, name in enumerate(("pred/a.png", "gt/a.png")):
        _png(tmp_path / name, i)
    code, out, err = run_cli("score", tmp_path / "pred", tmp_path / "gt", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["pairs"][0]["name"] == "a.png"  # -q is quiet, not a file name
    assert not (tmp_path / "-q").exists() and not any(p.name == "-q" for p in tmp_path.parent.iterdir())
    report = tmp_path / "r.json"
    code, out, err = run_cli("score", tmp_path / "pred", tmp_path / "gt", "--report-json", report, "-q")
    assert code == 0 and out == ""
    assert json.loads(report.read_text())["pairs"][0]["name"] == "a.png"
