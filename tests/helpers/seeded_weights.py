"""Deterministic random ALGNet weights and inputs, shared by the tests and the reference script.

Every tensor is drawn from numpy's PCG64 seeded by (seed, crc32(key)), so the same key always
gets the same values, whatever else is in the state dict. Scales keep activations O(1), and the
aggregation weights that start at zero upstream (beta, lamb_g, lamb_l, inside_all) are non-zero
so every branch is exercised.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(key.encode())]))


def seeded_tensor(key: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    rng = _rng(seed, key)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "A_log":
        v = np.log(rng.uniform(1.0, 16.0, shape))
    elif leaf == "D":
        v = rng.uniform(0.5, 1.5, shape)
    elif key.endswith("dt_proj.bias"):
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(0.5), shape))
        v = dt + np.log(-np.expm1(-dt))
    elif leaf in ("beta", "gamma", "lamb_g", "lamb_l", "inside_all"):
        v = 0.3 * rng.standard_normal(shape)
    elif leaf == "weight" and len(shape) == 1:  # norms
        v = 1.0 + 0.1 * rng.standard_normal(shape)
    elif leaf == "bias":
        v = 0.05 * rng.standard_normal(shape)
    else:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        v = rng.standard_normal(shape) / math.sqrt(fan_in)
    return torch.from_numpy(np.asarray(v, dtype=np.float32))


def seeded_state_dict(template: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random values for every key of ``template`` (only keys and shapes are used)."""
    return {k: seeded_tensor(k, tuple(v.shape), seed) for k, v in template.items()}


def seeded_image(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A float32 image batch in [0, 1] with some structure (smooth field plus noise)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    b, c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6.0 * xx + 4.0 * yy)[None, None] * rng.uniform(0.5, 1.0, (b, c, 1, 1))
    img = np.clip(base + 0.15 * rng.standard_normal((b, c, h, w)), 0.0, 1.0)
    return torch.from_numpy(img.astype(np.float32))
