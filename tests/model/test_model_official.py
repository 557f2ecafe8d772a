"""Our ALGNet against outputs of the official algnet.py (see tests/reference/make_official_reference.py)."""

import json
from pathlib import Path

import pytest
import torch
from helpers.seeded_weights import seeded_image, seeded_state_dict
from safetensors import safe_open

from algnet_cli.model import ALGNet, ALGNetConfig, restore

REF = Path(__file__).parents[1] / "data" / "official_reference.safetensors"


def _cases():
    with safe_open(str(REF), "pt") as f:
        return json.loads(f.metadata()["cases"])


def _expected(name):
    with safe_open(str(REF), "pt") as f:
        return [f.get_tensor(f"{name}.out{i}") for i in range(4)]


def _build(meta):
    kw = meta["kwargs"]
    cfg = ALGNetConfig(
        width=kw["width"],
        middle_blk_num=kw["middle_blk_num"],
        enc_blk_nums=kw["enc_blk_nums"],
        dec_blk_nums=kw["dec_blk_nums"],
    )
    model = ALGNet(cfg)
    model.load_state_dict(seeded_state_dict(model.state_dict(), meta["weight_seed"]), strict=True)
    if meta["tlc"]:
        model.set_tlc(256)
    return model.eval()


@pytest.mark.parametrize("name", ["default", "nafnet", "tiny", "tiny_tlc"])
def test_four_outputs_match_official(name):
    meta = _cases()[name]
    model = _build(meta)
    x = seeded_image(tuple(meta["input_shape"]), meta["input_seed"])
    assert x.shape[-1] % 16 and x.shape[-2] % 16 or name == "tiny_tlc"  # not multiples of 16
    with torch.inference_mode():
        outs = model(x)
    expected = _expected(name)
    assert len(outs) == 4
    for ours, ref in zip(outs, expected):
        assert ours.shape == ref.shape
        err = (ours - ref).abs().max().item()
        assert err < 1e-4, f"{name}: max abs difference {err:.2e}"
    # the helper crops the last output back to the input size
    with torch.inference_mode():
        cropped = restore(model, x)
    assert cropped.shape == x.shape
    torch.testing.assert_close(cropped, expected[-1][..., : x.shape[-2], : x.shape[-1]], atol=1e-4, rtol=0)


def test_tlc_is_active_and_changes_the_result():
    meta = _cases()["tiny_tlc"]
    model = _build(meta)
    kernels = {p.kernel for p in model.local_pools()}
    assert kernels == {(384, 384), (192, 192), (96, 96), (48, 48), (24, 24)}
    x = seeded_image(tuple(meta["input_shape"]), meta["input_seed"])
    n_params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        with_tlc = model(x)[-1]
        model.set_tlc(None)
        without = model(x)[-1]
    assert sum(p.numel() for p in model.parameters()) == n_params  # TLC adds no parameters
    assert (with_tlc - without).abs().max() > 1e-3
    expected = _expected("tiny_tlc")[-1]
    assert (without - expected).abs().max() > 1e-3  # the reference really used local pooling


def test_tlc_falls_back_to_global_mean_on_small_inputs():
    meta = _cases()["tiny"]
    model = _build(meta)
    x = seeded_image((1, 3, 50, 70), 5)
    with torch.inference_mode():
        plain = model(x)[-1]
        model.set_tlc(256)
        local = model(x)[-1]
    torch.testing.assert_close(local, plain, atol=1e-6, rtol=0)
