"""Seams between the CLI, the API and the runner: the device, the tile count as run, --to-video's record."""

import json

import numpy as np
import pytest
import torch
from helpers.cli import TINY, run_deblur, write_tiny_checkpoint
from PIL import Image
from skimage import data

from algnet_cli.api import Deblurrer
from algnet_cli.model import ALGNet
from algnet_cli.runner import Runner, RunOptions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_the_scan_backend_is_checked_against_the_device_the_model_runs_on(monkeypatch, checkpoint):
    """Deblurrer(device=X, scan=Y) checks Y on X (it was always checked on the CPU)."""
    from algnet_cli.model import load as loading

    seen = []
    real = loading.load

    def spy(source, *, device="cpu", **kw):
        seen.append(torch.device(device).type)
        return real(source, device="cpu", **kw)

    monkeypatch.setattr(loading, "load", spy)

    # stand in for a GPU: "fake" picks the meta device (no data), where the model can be moved but not run
    def fake_pick(name="auto"):
        return torch.device("meta" if name in ("fake", "meta") else name)

    monkeypatch.setattr("algnet_cli.runner.pick_device", fake_pick)
    monkeypatch.setattr("algnet_cli.api.pick_device", fake_pick)
    d = Deblurrer(str(checkpoint), device="fake", scan="chunked")
    assert seen == ["meta"] and d.runner.device.type == "meta"


def test_the_record_counts_the_tiles_that_ran_after_an_out_of_memory_split(monkeypatch):
    torch.manual_seed(0)
    runner = Runner(ALGNet(TINY).eval(), RunOptions("cpu", tile=0))
    real_call = Runner._call

    def tight_memory(self, images, report):
        if max(images.shape[-2:]) > 64:
            raise MemoryError("simulated: out of memory")
        return real_call(self, images, report)

    monkeypatch.setattr(Runner, "_call", tight_memory)
    out, report = runner.run(torch.rand(1, 3, 96, 128))
    assert out.shape == (1, 3, 96, 128)
    assert report.tiles > 1 and report.oom_splits == 1
    assert runner.tile_count(96, 128) == 0  # planning alone says "whole image": the record must not use it
    _, report = runner.run(torch.rand(1, 3, 48, 64))
    assert report.tiles == 0 and report.oom_splits == 0  # a whole image again
    assert runner.totals.oom_splits == 1


def test_to_video_writes_a_run_record_and_refuses_gt(tmp_path, checkpoint):
    frames = tmp_path / "frames"
    frames.mkdir()
    rgb = data.astronaut()[:32, :48]
    for i in range(3):
        Image.fromarray(np.roll(rgb, i, axis=1)).save(frames / f"f{i}.png")
    out = tmp_path / "v" / "clip.mp4"
    r = run_deblur(frames, "--to-video", out, "--fps", "10", "--model", checkpoint, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    record = json.loads((out.parent / "algnet-run.json").read_text())
    assert record["videos"][0]["output"] == str(out) and record["videos"][0]["frames"] == 3
    assert record["model"]["config"]["width"] == TINY.width
    r = run_deblur(frames, "--to-video", tmp_path / "w.mp4", "--fps", "10", "--model", checkpoint, "--gt", frames)
    assert r.returncode == 2 and "--gt" in r.stderr
