"""The Python API checks what it is given, and gives back what it took."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.cli import write_identity_checkpoint

import algnet_cli
from algnet_cli.api import Deblurrer


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    path = write_identity_checkpoint(tmp_path_factory.mktemp("ckpt") / "identity.safetensors")
    return Deblurrer(str(path), device="cpu", quiet=True)


def test_a_float_image_in_0_255_is_refused_with_the_reason(identity):
    img = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32) * 255
    with pytest.raises(ValueError, match=r"read as 0\.\.1.*reaches 25\d.*img / 255"):
        identity.deblur(img)


def test_nan_in_the_input_is_named_as_the_inputs(identity):
    img = np.random.default_rng(1).random((40, 48, 3)).astype(np.float32)
    img[5, 5, 0] = np.nan
    with pytest.raises(ValueError, match="the image holds 1 NaN or infinite values"):
        identity.deblur(img)


def test_h_w_1_comes_back_h_w_1_and_h_w_stays_h_w(identity):
    img = np.random.default_rng(2).integers(0, 256, (40, 48, 1), dtype=np.uint8)
    out = identity.deblur(img)
    assert out.shape == (40, 48, 1) and np.array_equal(out, img)
    assert identity.deblur(img[..., 0]).shape == (40, 48)


def test_a_channels_first_array_is_not_taken_for_rgba(identity):
    with pytest.raises(ValueError, match="channels-first"):
        identity.deblur(np.zeros((3, 40, 4), np.uint8))


@pytest.mark.parametrize(
    "kwargs, word",
    [({"tile": -5}, "tile"), ({"tile": 8}, "tile"), ({"tile_overlap": -1}, "tile_overlap"),
     ({"max_memory_gb": math.nan}, "max_memory_gb"), ({"max_memory_gb": 0}, "max_memory_gb"),
     ({"tlc": -3}, "tlc"), ({"tlc": "yes"}, "tlc"), ({"strength": math.nan}, "strength")],
)  # fmt: skip
def test_constructor_arguments_are_checked_before_anything_loads(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Deblurrer("/no/such/checkpoint.safetensors", device="cpu", **kwargs)  # refused before the load


def test_the_package_shows_its_public_api():
    names = dir(algnet_cli)
    assert {"Deblurrer", "load_model", "restore", "ModelDescriptor", "__version__"} <= set(names)
    for name in ("Deblurrer", "load_model", "restore", "ModelDescriptor"):
        assert name in algnet_cli.__doc__
