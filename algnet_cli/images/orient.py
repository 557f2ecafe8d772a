"""Pixels stored with an EXIF/TIFF orientation, turned upright."""

from __future__ import annotations

import numpy as np


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with an EXIF orientation (1..8) upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](img)) if orientation in ops else img
