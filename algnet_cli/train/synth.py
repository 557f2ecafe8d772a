"""Synthetic blurred/sharp pairs: blur in linear light, Poisson-Gaussian noise, 8-bit, optional JPEG."""

from __future__ import annotations

import numpy as np

from .kernels import random_kernel


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _convolve(lin: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """A true convolution (not correlation) of a float32 image with a kernel, borders reflected."""
    import cv2

    return cv2.filter2D(
        lin.astype(np.float32, copy=False), -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT
    )


def blur_linear(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve an sRGB float image (H, W, 3) in [0, 1] with a kernel in linear light; returns sRGB float."""
    return linear_to_srgb(_convolve(srgb_to_linear(img.astype(np.float32)), kernel)).astype(np.float32)


def _blur_lin(lin: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve a linear-light image (values may exceed 1) and clip to the sensor's white."""
    return np.clip(_convolve(lin, kernel), 0.0, 1.0)


def make_pair(
    sharp_region: np.ndarray,
    rng: np.random.Generator,
    patch: int,
    max_kernel: int = 31,
    jpeg_prob: float = 0.3,
    mix=None,
    realistic: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(blurred, sharp, kernel kind) of one patch, both (patch, patch, 3) float32 in [0, 1].

    ``realistic``: some patches get highlights above white before the blur (clipped after, as a
    sensor does) and the noise of a higher ISO.

    ``sharp_region`` is uint8 (patch + 2 * margin) square around the patch, so the patch's borders
    are blurred by real neighbours; margin = max_kernel // 2 + 1.
    """
    import cv2

    kw = {} if mix is None else {"mix": mix}
    kind, k = random_kernel(rng, max_kernel, **kw)
    m = (sharp_region.shape[0] - patch) // 2
    region = sharp_region.astype(np.float32) / 255.0
    if realistic and rng.uniform() < 0.3:  # highlights brighter than white smear into streaks, as in real shots
        lin = srgb_to_linear(region)
        lin = np.where(lin > 0.85, lin * rng.uniform(1.5, 4.0), lin)
        blurred = _blur_lin(lin, k)
    else:
        blurred = srgb_to_linear(blur_linear(region, k))
    a, b = rng.uniform(0, 0.004), rng.uniform(0, 2e-5)  # Poisson-Gaussian, in linear light
    if realistic and rng.uniform() < 0.3:  # higher ISO
        a, b = rng.uniform(0.004, 0.02), rng.uniform(2e-5, 2e-4)
    blurred = blurred + np.sqrt(np.maximum(a * blurred + b, 0)) * rng.standard_normal(blurred.shape).astype(np.float32)
    blurred8 = np.clip(np.round(linear_to_srgb(blurred) * 255), 0, 255).astype(np.uint8)
    if rng.uniform() < jpeg_prob:
        q = int(rng.integers(60, 96))
        ok, buf = cv2.imencode(".jpg", blurred8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        assert decoded is not None  # a JPEG that OpenCV has just written
        blurred8 = np.ascontiguousarray(decoded[..., ::-1]).astype(np.uint8)
    sl = slice(m, m + patch)
    return blurred8[sl, sl].astype(np.float32) / 255.0, region[sl, sl], kind
