"""The Python API: arrays in, arrays out; the model descriptor; the run description."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import TINY, write_tiny_checkpoint
from skimage import data

from algnet_cli import Deblurrer, ModelDescriptor, load_model
from algnet_cli.fileio import sha256_file
from algnet_cli.model import ALGNet

RGB = data.astronaut()[200:248, 180:244]  # 48 x 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def deblurrer(checkpoint):
    return Deblurrer(str(checkpoint), device="cpu", scan="chunked")


def test_the_descriptor_says_what_was_loaded_and_how_it_runs(checkpoint, deblurrer):
    d = deblurrer.descriptor
    assert isinstance(d, ModelDescriptor)
    assert d.config == TINY and d.source == str(checkpoint) and d.sha256 == sha256_file(checkpoint)
    assert d.size_multiple == 16 and d.tlc_size == (256, 256) and d.scan_backend == "chunked"
    assert d.device == "cpu" and "fp16" not in d.precisions
    with pytest.raises(AttributeError):
        d.scan_backend = "fused"  # frozen
    model = load_model(checkpoint, scan="auto")
    assert model.descriptor.scan_backend in ("fused", "chunked") and model.descriptor.tlc_size is None
    from algnet_cli import model as model_layer

    assert model_layer.load_model is load_model  # loading has one home: the model layer


@pytest.mark.parametrize(
    "img",
    [
        RGB,
        (RGB.astype(np.uint16) * 257),
        RGB.astype(np.float32) / 255,
        RGB[..., 0],  # grey, 2-D
        np.dstack([RGB, np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)]),  # RGBA
    ],
    ids=["uint8", "uint16", "float32", "grey", "rgba"],
)
def test_arrays_keep_their_dtype_shape_and_alpha(deblurrer, img):
    out = deblurrer.deblur(img)
    assert out.dtype == img.dtype and out.shape == img.shape
    if img.ndim == 3 and img.shape[2] == 4:
        assert np.array_equal(out[..., 3], img[..., 3])
    if img.dtype == np.float32:
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_a_batch_gives_what_each_image_gives_alone(deblurrer):
    imgs = [RGB, np.ascontiguousarray(RGB[::-1]), np.ascontiguousarray(RGB[:, ::-1])]
    together = deblurrer.deblur_many(imgs)
    for alone, batched in zip([deblurrer.deblur(i) for i in imgs], together, strict=True):
        assert np.abs(alone.astype(int) - batched.astype(int)).max() <= 1


def test_run_reports_what_the_runner_did_and_describe_run_adds_it_up(checkpoint):
    d = Deblurrer(str(checkpoint), device="cpu", scan="chunked", tile=32, tile_overlap=8)
    outs, report = d.run([RGB])
    assert outs[0].shape == RGB.shape
    assert report.tile == 32 and report.tiles == 6  # 48 x 64 in tiles of 32 with 8 overlap: 2 x 3
    info = d.describe_run()
    assert info["model"]["sha256"] == sha256_file(checkpoint) and info["scan_backend"] == "chunked"
    assert info["tiling"] == {"tile": 32, "overlap": 8} and info["fp32_fallbacks"] == 0


def test_a_module_is_taken_as_it_is_and_described(deblurrer):
    torch.manual_seed(0)
    net = ALGNet(TINY).eval()
    d = Deblurrer(net, device="cpu", tlc=False)
    assert d.model is net and d.descriptor.path is None and d.descriptor.sha256 is None
    assert d.deblur(RGB).shape == RGB.shape


def test_bad_arrays_are_refused_with_the_reason(deblurrer):
    with pytest.raises(TypeError, match="dtype"):
        deblurrer.deblur(RGB.astype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        deblurrer.deblur(np.zeros((8, 8, 5), np.uint8))


def test_the_python_example_keeps_what_the_cli_keeps(tmp_path, monkeypatch):
    """examples/python_api.py goes through deblur_file: a 16-bit PNG stays 16-bit (a PIL RGB round trip
    would have made it 8-bit)."""
    import runpy

    import png
    from helpers.cli import write_identity_checkpoint

    deep = np.random.default_rng(3).integers(0, 65536, (48, 40 * 3), dtype=np.uint16)
    png.Writer(40, 48, greyscale=False, bitdepth=16).write(open(tmp_path / "in.png", "wb"), deep)
    model = write_identity_checkpoint(tmp_path / "id.safetensors")
    example = Path(__file__).resolve().parent.parent / "examples" / "python_api.py"
    monkeypatch.setattr(sys, "argv", [str(example), str(tmp_path / "in.png"), str(tmp_path / "out.png"), str(model)])
    runpy.run_path(str(example), run_name="__main__")
    w, h, rows, info = png.Reader(filename=str(tmp_path / "out.png")).read()
    assert info["bitdepth"] == 16 and (w, h) == (40, 48)
    assert np.array_equal(np.vstack(list(rows)).astype(np.uint16), deep)  # the identity model: the same samples
