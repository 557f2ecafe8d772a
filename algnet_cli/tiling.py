"""Tile geometry and blending weights, as pure functions (no torch)."""

from __future__ import annotations

import math

import numpy as np

#: peak bytes per input pixel per unit of width, measured (benchmarks/model.py, benchmarks/gpu.py): ~100-115
BYTES_PER_PIXEL_PER_WIDTH = 120
#: the forward's memory budget on the CPU when none is given
CPU_BUDGET_GB = 3.0


def forward_bytes(height: int, width: int, model_width: int, multiple: int = 16, batch: int = 1) -> float:
    """Rough peak memory of one whole-image forward: the padded pixels times the model's width."""
    padded = (-(-height // multiple) * multiple) * (-(-width // multiple) * multiple)
    return batch * padded * model_width * BYTES_PER_PIXEL_PER_WIDTH


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of evenly sized tiles of length ``min(tile, length)`` covering [0, length).

    Neighbours overlap by at least ``overlap``; the first starts at 0 and the last ends at ``length``.
    """
    if tile <= 0 or length <= tile:
        return [0]
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    count = math.ceil((length - overlap) / (tile - overlap))
    span = length - tile
    return [round(i * span / (count - 1)) for i in range(count)]


def tiles_2d(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, tile_height, tile_width) of every tile, row by row."""
    th, tw = min(tile, height) if tile > 0 else height, min(tile, width) if tile > 0 else width
    return [(y, x, th, tw) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]


def ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight of length n: a smooth (cosine) rise over ``overlap`` at inner edges.

    The first quarter of the overlap gets weight 0, so pixels next to a tile's cut, which saw
    padding instead of neighbours, never reach the output.
    """
    w = np.ones(n, dtype=np.float32)
    if overlap <= 0:
        return w
    dead = overlap // 4
    rise = max(1, overlap - 2 * dead)
    x = np.clip((np.arange(overlap, dtype=np.float32) - dead + 0.5) / rise, 0.0, 1.0)
    up = 0.5 - 0.5 * np.cos(np.pi * x)
    k = min(overlap, n)
    if not at_start:
        w[:k] *= up[:k]
    if not at_end:
        w[n - k :] *= up[:k][::-1]
    return w


def tile_weight(top: int, left: int, th: int, tw: int, height: int, width: int, overlap: int) -> np.ndarray:
    """2-D weight (th, tw) of a tile; edges on the image border keep full weight."""
    wy = ramp(th, overlap, top == 0, top + th == height)
    wx = ramp(tw, overlap, left == 0, left + tw == width)
    return np.outer(wy, wx)
