"""Blur kernels (numpy only): camera-shake trajectories, straight lines, defocus disks, Gaussians.

Every kernel is float32, odd-sized, sums to 1 and has its centre of mass at the centre pixel,
so a blurred image stays aligned with its sharp target.
"""

from __future__ import annotations

import math

import numpy as np


def _splat(points: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Bilinear splat of complex points (equally weighted, or by ``weights``) onto a size x size
    canvas, normalised.

    The points are first moved so that their (weighted) mean lands on the centre pixel; bilinear
    splatting keeps the mean, so the kernel's centre of mass is exactly the centre.
    """
    c = (size - 1) / 2
    mean = points.mean() if weights is None else (points * weights).sum() / weights.sum()
    pts = points - mean + complex(c, c)
    k = np.zeros((size, size), dtype=np.float64)
    x, y = pts.real, pts.imag
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(
            k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w if weights is None else w * weights
        )
    return (k / k.sum()).astype(np.float32)


def _canvas(extent: float) -> int:
    return int(2 * math.ceil(extent / 2 + 1) + 1)


def trajectory_kernel(
    rng: np.random.Generator, max_size: int = 31, steps: int = 2000, min_length: float | None = None
) -> np.ndarray:
    """Random camera shake (after Boracchi & Foi, 2012): a particle at constant speed with random
    kicks, a pull back towards its start and rare sudden reversals, splatted into a kernel.
    ``min_length``: the path is then scaled so that its extent (the larger side of its bounding box)
    lies between this and ``max_size - 3`` pixels."""
    length = float(rng.uniform(0.3, 1.0) * (max_size - 3))
    anxiety = rng.uniform(0.0, 0.005)
    centripetal = 0.7 * rng.uniform()
    gaussian_term = 10 * rng.uniform()
    freq_big_shakes = 0.2 * rng.uniform()
    v = np.exp(1j * rng.uniform(0, 2 * np.pi)) * length / (steps - 1)
    x = np.zeros(steps, dtype=np.complex128)
    for t in range(steps - 1):
        shake = 0j
        if rng.uniform() < freq_big_shakes * anxiety:
            shake = 2 * v * np.exp(1j * (np.pi + (rng.uniform() - 0.5)))
        dv = shake + anxiety * (gaussian_term * complex(rng.normal(), rng.normal()) - centripetal * x[t]) * (
            length / (steps - 1)
        )
        v = v + dv
        v = v / (abs(v) + 1e-12) * length / (steps - 1)
        x[t + 1] = x[t] + v
    extent = float(max(np.ptp(x.real), np.ptp(x.imag)))
    if min_length is not None and extent > 0:
        # the canvas is centred on the path's mean, so it must hold twice the farthest reach from it
        x = x - x.mean()
        reach = 2 * max(np.abs(x.real).max(), np.abs(x.imag).max())
        scale = min(rng.uniform(min_length, max_size - 3) / extent, (max_size - 3) / reach)
        return _splat(x * scale, min(max_size, _canvas(reach * scale)))
    if extent > max_size - 3:  # keep inside the canvas
        x *= (max_size - 3) / extent
        extent = max_size - 3
    return _splat(x, min(max_size, _canvas(extent)))


def line_kernel(rng: np.random.Generator, max_size: int = 31, min_length: float = 2.0) -> np.ndarray:
    """Uniform linear motion of random length (at least ``min_length`` pixels) and angle."""
    length = rng.uniform(min_length, max_size - 3)
    angle = rng.uniform(0, np.pi)
    pts = np.linspace(-0.5, 0.5, 4 * int(length) + 8) * length * np.exp(1j * angle)
    return _splat(pts, min(max_size, _canvas(length)))


def disk_kernel(rng: np.random.Generator, max_size: int = 31, radius: float | None = None) -> np.ndarray:
    """Defocus: a uniform disk of random radius (or ``radius``), anti-aliased by supersampling."""
    if radius is None:
        radius = rng.uniform(1.0, (max_size - 3) / 2)
    size = min(max_size, _canvas(2 * radius))
    s = 8
    c = (size - 1) / 2
    yy, xx = np.mgrid[0 : size * s, 0 : size * s]
    inside = ((xx + 0.5) / s - 0.5 - c) ** 2 + ((yy + 0.5) / s - 0.5 - c) ** 2 <= radius**2
    k = inside.reshape(size, s, size, s).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(rng: np.random.Generator, max_size: int = 31) -> np.ndarray:
    sigma = rng.uniform(0.4, 2.0)
    size = min(max_size, 2 * math.ceil(3 * sigma) + 1)
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def identity_kernel() -> np.ndarray:
    return np.ones((1, 1), dtype=np.float32)


def shake_defocus_kernel(rng: np.random.Generator, max_size: int = 31) -> np.ndarray:
    """Camera shake seen through a slightly defocused lens: a trajectory convolved with a small disk."""
    shake = trajectory_kernel(rng, max(5, (2 * max_size) // 3 | 1))
    disk = disk_kernel(rng, max(5, max_size // 4 | 1))
    h, w = shake.shape[0] + disk.shape[0] - 1, shake.shape[1] + disk.shape[1] - 1
    k = np.fft.irfft2(np.fft.rfft2(shake, (h, w)) * np.fft.rfft2(disk, (h, w)), (h, w))
    k = np.clip(k, 0, None)
    return _recentre(k / k.sum())


def _recentre(k: np.ndarray) -> np.ndarray:
    """A kernel moved by whole and fractional pixels so that its centre of mass is its centre pixel."""
    yy, xx = np.nonzero(k > 0)
    return _splat((xx + 1j * yy).astype(np.complex128), max(k.shape) + 2 | 1, k[yy, xx])


#: (kind, probability)
MIX = (("trajectory", 0.5), ("line", 0.15), ("disk", 0.15), ("gaussian", 0.12), ("identity", 0.08))
#: closer to real photos: longer shake (the caller's max_size, e.g. 67 for 64 px), shake through defocus
REAL_MIX = (
    ("trajectory", 0.35),
    ("long_trajectory", 0.15),
    ("line", 0.1),
    ("shake_defocus", 0.15),
    ("disk", 0.12),
    ("gaussian", 0.08),
    ("identity", 0.05),
)
#: the long-motion held-out set: shake and straight motion of 33 to 64 px
LONG_MIX = (("long_trajectory", 0.7), ("long_line", 0.3))
LONG_MIN = 33.0


def random_kernel(rng: np.random.Generator, max_size: int = 31, mix=MIX) -> tuple[str, np.ndarray]:
    kinds, probs = zip(*mix)
    kind = kinds[int(rng.choice(len(kinds), p=np.asarray(probs) / sum(probs)))]
    if kind == "trajectory":
        return kind, trajectory_kernel(rng, min(max_size, 35))
    if kind == "long_trajectory":  # drawn again (rarely) when a lopsided path came out short
        lo = min(LONG_MIN, max_size - 4)
        for _ in range(20):
            k = trajectory_kernel(rng, max_size, min_length=lo)
            ys, xs = np.nonzero(k > 0)
            if max(np.ptp(ys), np.ptp(xs)) >= lo - 1:
                break
        return kind, k
    if kind == "long_line":
        return kind, line_kernel(rng, max_size, min_length=min(LONG_MIN, max_size - 4))
    if kind == "shake_defocus":
        return kind, shake_defocus_kernel(rng, max_size)
    if kind == "line":
        return kind, line_kernel(rng, max_size)
    if kind == "disk":
        return kind, disk_kernel(rng, max_size)
    if kind == "gaussian":
        return kind, gaussian_kernel(rng, max_size)
    return kind, identity_kernel()


def centre_of_mass(k: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[0 : k.shape[0], 0 : k.shape[1]]
    return float((k * yy).sum() / k.sum()), float((k * xx).sum() / k.sum())
