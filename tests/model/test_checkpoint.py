"""Checkpoint formats, wrappers, configuration inference and error messages."""

import os
import pickle
import subprocess
import sys

import pytest
import torch
from helpers.seeded_weights import seeded_state_dict

from algnet_cli import load_model
from algnet_cli.errors import CheckpointError, CheckpointNotFoundError, StateDictMismatchError
from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.model.checkpoint import infer_config, load_checkpoint, read_checkpoint, save_safetensors

ODD = ALGNetConfig(width=8, middle_blk_num=2, enc_blk_nums=(1, 0, 2, 1), dec_blk_nums=(1, 2, 0, 1), d_state=8)


@pytest.fixture(scope="module")
def weights():
    return seeded_state_dict(ALGNet(ODD).state_dict(), seed=5)


WRAPPERS = [
    lambda sd: sd,
    lambda sd: {"params_ema": sd},
    lambda sd: {"params": sd},
    lambda sd: {"params": {k: v * 0 for k, v in sd.items()}, "params_ema": sd},  # EMA wins
    lambda sd: {"epoch": 3, "state_dict": sd, "optimizer": {"lr": 1e-3}},
    lambda sd: {"model": sd},
    lambda sd: {"net": sd},
]


@pytest.mark.parametrize("fmt,wrap", [("pth", i) for i in range(len(WRAPPERS))] + [("safetensors", 0)])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_wrappers_prefixes_and_formats(tmp_path, weights, wrap, prefix, fmt):
    sd = {prefix + k: v for k, v in weights.items()}
    path = tmp_path / f"ckpt.{fmt}"
    if fmt == "pth":
        torch.save(WRAPPERS[wrap](sd), path)
    else:
        save_safetensors(sd, path)
    model = load_checkpoint(path)
    assert model.config == ODD
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)


@pytest.mark.parametrize(
    "config",
    [
        ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1)),
        ALGNetConfig(
            width=16, middle_blk_num=0, enc_blk_nums=(2, 1, 1, 3), dec_blk_nums=(1, 1, 2, 1), d_state=16, expand=1
        ),
        ALGNetConfig(
            width=12, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_conv=3, dt_rank=4
        ),
    ],
)
def test_config_inferred_from_tensors(config):
    assert infer_config(ALGNet(config).state_dict()) == config


def test_official_default_layout_is_inferred():
    """The official model's state dict (keys, shapes, order: listed from the official algnet.py's
    default ALGNet in tests/reference/) is what our default model has, and its config is read back."""
    from pathlib import Path

    from algnet_cli.model import DEFAULT

    listing = Path(__file__).resolve().parents[1] / "reference" / "official_state_dict_default.txt"
    shapes = {}
    for line in listing.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split("\t")
        shapes[key] = torch.empty(eval(shape), device="meta")
    assert len(shapes) == 1426
    assert infer_config(shapes) == DEFAULT
    with torch.device("meta"):
        ours = ALGNet(DEFAULT).state_dict()
    assert list(ours) == list(shapes)
    assert all(tuple(ours[k].shape) == tuple(v.shape) for k, v in shapes.items())


def test_missing_and_unexpected_keys_named(tmp_path, weights):
    sd = dict(weights)
    sd.pop("intro.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(StateDictMismatchError) as e:
        load_checkpoint(tmp_path / "bad.pth")
    assert "intro.bias" in str(e.value) and "extra.weight" in str(e.value)
    assert e.value.missing == ["intro.bias"] and e.value.unexpected == ["extra.weight"]


def test_wrong_shape_named(tmp_path, weights):
    sd = dict(weights)
    sd["ending.bias"] = torch.zeros(4)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(StateDictMismatchError, match="ending.bias"):
        load_checkpoint(tmp_path / "bad.pth")


def test_truncated_empty_missing_and_foreign_files(tmp_path, weights):
    good = tmp_path / "good.pth"
    torch.save(weights, good)
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    save_safetensors(weights, tmp_path / "good.safetensors")
    st = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(st[: len(st) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    for name, pattern in [
        ("trunc.pth", "truncated or corrupt"),
        ("trunc.safetensors", "not a readable safetensors"),
        ("empty.pth", "empty"),
        ("text.pth", "truncated or corrupt"),
        ("other.pth", "not an ALGNet checkpoint"),
    ]:
        with pytest.raises(CheckpointError, match=pattern):
            read_checkpoint(tmp_path / name) if name != "other.pth" else load_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointNotFoundError):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):  # also a stdlib type
        load_checkpoint(tmp_path / "nope.pth")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pth", "wb") as f:
        pickle.dump({"intro.weight": _Exploit()}, f)
    torch.save({"params": _Exploit()}, "evil2.pth")
    for name in ("evil.pth", "evil2.pth"):
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(name)
    assert not (tmp_path / "PWNED").exists()


def test_load_model_api(tmp_path, weights):
    save_safetensors(weights, tmp_path / "m.safetensors")
    model = load_model(tmp_path / "m.safetensors", tlc=True, scan="reference")
    assert not model.training and model.tlc_train_size == (256, 256)
    assert {m.scan_backend for m in model.modules() if hasattr(m, "scan_backend")} == {"reference"}
    model = load_model(tmp_path / "m.safetensors")
    assert model.tlc_train_size is None


def test_cli_info_and_clean_errors(tmp_path, weights):
    save_safetensors(weights, tmp_path / "m.safetensors")
    run = lambda *a: subprocess.run([sys.executable, "-m", "algnet_cli", *a], capture_output=True, text=True)
    out = run("models", "info", str(tmp_path / "m.safetensors"))
    assert out.returncode == 0, out.stderr
    assert "width 8, enc [1,0,2,1], middle 2, dec [1,2,0,1], d_state 8" in out.stdout
    (tmp_path / "bad.pth").write_text("garbage")
    out = run("models", "info", str(tmp_path / "bad.pth"))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "bad.pth" in out.stderr and "Traceback" not in out.stderr
