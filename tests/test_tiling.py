"""Tile geometry, blending, and tiled against whole-image runs."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.runner import Runner, RunOptions
from algnet_cli.tiling import tile_starts, tile_weight, tiles_2d


@pytest.mark.parametrize(
    "length,tile,overlap", [(100, 40, 16), (1000, 256, 32), (257, 256, 32), (64, 64, 8), (10, 64, 8), (999, 97, 31)]
)
def test_tiles_cover_evenly_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(size - g >= overlap for g in gaps)  # neighbours overlap enough
    assert not gaps or max(gaps) - min(gaps) <= 1  # evenly spread


def test_weights_are_positive_everywhere_and_one_at_borders():
    h, w, tile, ov = 150, 170, 64, 16
    total = np.zeros((h, w))
    for top, left, th, tw in tiles_2d(h, w, tile, ov):
        total[top : top + th, left : left + tw] += tile_weight(top, left, th, tw, h, w, ov)
    assert total.min() > 0.05
    assert tile_weight(0, 0, 64, 64, 64, 64, ov).min() == 1.0  # a single tile is untouched


class SmallReceptiveField(nn.Module):
    """Two 3x3 convolutions: each output pixel sees 2 pixels around it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1))
        self.config = SimpleNamespace(width=8, multiple=16)

    def forward(self, x):
        return [x + self.body(x)]


def test_tiled_equals_whole_where_tiling_is_exact():
    net = SmallReceptiveField()
    x = torch.rand(1, 3, 150, 170)
    whole = Runner(net, RunOptions(device="cpu", tile=0)).restore(x)
    tiled = Runner(net, RunOptions(device="cpu", tile=64, tile_overlap=16)).restore(x)
    assert (whole - tiled).abs().max() < 1e-5


def test_auto_tiles_only_above_the_budget():
    cfg = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))
    runner = Runner(ALGNet(cfg), RunOptions(device="cpu", max_memory_gb=0.01))
    assert runner.plan_tile(64, 64) == 0
    side = runner.plan_tile(2000, 3000)
    assert 64 <= side < 2000 and side % 16 == 0
    assert runner.estimate_bytes(side, side) <= 0.01 * 2**30


def test_tile_count_follows_the_plan():
    net = SmallReceptiveField()
    assert Runner(net, RunOptions(device="cpu", tile=0)).tile_count(150, 170) == 0
    assert Runner(net, RunOptions(device="cpu", tile=256)).tile_count(150, 170) == 0
    runner = Runner(net, RunOptions(device="cpu", tile=64, tile_overlap=16))
    assert runner.tile_count(150, 170) == len(tiles_2d(150, 170, 64, 16)) == 12


def test_algnet_tiled_against_whole_is_bounded():
    """The embedded model's global branch, stems and pooling see the whole image, so tiles change
    its output a little; docs/deblurring.md states the figure this bounds (41 dB at 128 px tiles here)."""
    import math

    import cv2
    from skimage import data

    from algnet_cli import Deblurrer

    img = cv2.GaussianBlur(data.astronaut()[:320, :384], (0, 0), 1.5)
    whole = Deblurrer("default", device="cpu", tile=0).deblur(img).astype(float)
    tiled = Deblurrer("default", device="cpu", tile=128, tile_overlap=32).deblur(img).astype(float)
    psnr = 10 * math.log10(255**2 / ((tiled - whole) ** 2).mean())
    assert psnr > 38.0
