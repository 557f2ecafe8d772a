"""PSNR and SSIM as pure functions of numpy arrays, with the benchmarks' conventions.

Arrays: H x W or H x W x C, any dtype; ``data_range`` defaults to the dtype's white level
(255 for uint8, 65535 for uint16, 1.0 for floats). All arithmetic is float64.

Protocols:
- ``basicsr`` (default): RGB, PSNR over all values, SSIM with an 11x11 Gaussian window (sigma 1.5),
  K1 0.01, K2 0.03, per channel then averaged, a 5-pixel border of the SSIM map dropped (as
  scikit-image does); optional ``crop_border`` and BT.601 ``y_channel``.
- ``gopro``: MATLAB's ``psnr`` and ``ssim`` on 8-bit RGB (GoPro / HIDE papers): SSIM filters the
  H x W x 3 volume with a 3-D Gaussian (11 taps, sigma 1.5, replicate padding) and averages the
  whole map.
- ``realblur``: the RealBlur evaluation: the prediction is intensity-matched and aligned to the
  ground truth by an ECC homography, warped with cubic interpolation; PSNR and SSIM over the valid
  (mapped) region only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import PairingError

PROTOCOLS = ("basicsr", "gopro", "realblur")
SIGMA = 1.5
RADIUS = int(3.5 * SIGMA + 0.5)  # 5: an 11-tap window, as scipy.ndimage with truncate=3.5
K1, K2 = 0.01, 0.03


@dataclass(frozen=True)
class Protocol:
    """A scoring convention; recorded in every report."""

    name: str = "basicsr"
    crop_border: int = 0
    y_channel: bool = False

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.name!r}; use one of {', '.join(PROTOCOLS)}")
        if self.crop_border < 0:
            raise ValueError("crop_border cannot be negative")

    def describe(self) -> dict:
        d = asdict(self)
        d.update(ssim_window=2 * RADIUS + 1, ssim_sigma=SIGMA, K1=K1, K2=K2)
        d.update(alpha="not scored: colour channels only; a pair whose alpha differs gets a note")
        if self.name == "realblur":
            d.update(alignment="intensity matching + ECC homography, cubic warp, valid region only")
            d.update(min_side=REALBLUR_MIN_SIDE)
        if self.name == "gopro":
            d.update(convention="MATLAB psnr/ssim on 8-bit RGB (3-D Gaussian, replicate padding)")
        return d


def _default_range(img: np.ndarray) -> float:
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)


def _gaussian_kernel(radius: int = RADIUS, sigma: float = SIGMA) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _check(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise PairingError(f"size mismatch: prediction {pred.shape} vs ground truth {gt.shape}")


def to_y(img: np.ndarray, data_range: float) -> np.ndarray:
    """BT.601 limited-range luma of an RGB image, on the same scale as ``data_range`` (float64)."""
    rgb = img[..., :3].astype(np.float64) / data_range
    y = 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]
    return y / 255.0 * data_range


def _prepare(pred, gt, data_range, crop_border, y_channel):
    """Check shapes, pick the data range, take luma and crop borders as asked (dtype unchanged)."""
    _check(pred, gt)
    data_range = float(data_range if data_range is not None else _default_range(gt))
    if y_channel and pred.ndim == 3 and pred.shape[2] >= 3:  # grey images are their own Y (as BasicSR does)
        pred, gt = to_y(pred, data_range), to_y(gt, data_range)
    if crop_border:
        c = crop_border
        if 2 * c >= min(gt.shape[:2]):
            h, w = gt.shape[:2]
            raise PairingError(f"--crop-border {c} is too large for a {w}x{h} image (nothing is left to score)")
        pred, gt = pred[c:-c, c:-c, ...], gt[c:-c, c:-c, ...]
    return pred, gt, data_range


def psnr(
    pred: np.ndarray, gt: np.ndarray, data_range: float | None = None, crop_border: int = 0, y_channel: bool = False
) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    p, g, r = _prepare(pred, gt, data_range, crop_border, y_channel)
    mse = float(np.mean((p.astype(np.float64) - g.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(r * r / mse)


def ssim_map(p: np.ndarray, g: np.ndarray, data_range: float) -> np.ndarray:
    """Per-pixel SSIM of float64 arrays (H x W or H x W x C), Gaussian window, sample covariance off.

    Values within RADIUS pixels of the border depend on the padding (reflect) and are usually dropped.
    """
    import cv2

    k = _gaussian_kernel()

    def blur(a: np.ndarray) -> np.ndarray:
        if a.ndim == 3 and a.shape[2] > 4:  # OpenCV filters at most 4 channels at once
            return np.stack([blur(a[..., i]) for i in range(a.shape[2])], axis=-1)
        out = cv2.sepFilter2D(a, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)
        return out.reshape(a.shape)

    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_p, mu_g = blur(p), blur(g)
    var_p = blur(p * p) - mu_p * mu_p
    var_g = blur(g * g) - mu_g * mu_g
    cov = blur(p * g) - mu_p * mu_g
    num = (2 * mu_p * mu_g + c1) * (2 * cov + c2)
    den = (mu_p * mu_p + mu_g * mu_g + c1) * (var_p + var_g + c2)
    return num / den


def ssim(
    pred: np.ndarray, gt: np.ndarray, data_range: float | None = None, crop_border: int = 0, y_channel: bool = False
) -> float:
    """Mean SSIM (scikit-image / BasicSR convention): per channel, RADIUS border dropped, averaged."""
    pred, gt, r = _prepare(pred, gt, data_range, crop_border, y_channel)
    h, w = pred.shape[:2]
    if min(h, w) <= 2 * RADIUS:
        raise PairingError(f"image of {w}x{h} is too small for an 11x11 SSIM window")
    # Strips of rows keep every intermediate in cache; each strip reads RADIUS rows of context
    # on both sides, so the interior map is exactly that of the whole image.
    total = 0.0
    step = max(8, (1 << 18) // max(1, pred[0].size))
    for top in range(RADIUS, h - RADIUS, step):
        bottom = min(top + step, h - RADIUS)
        rows = slice(top - RADIUS, bottom + RADIUS)
        p = pred[rows].astype(np.float64)
        g = gt[rows].astype(np.float64)
        m = ssim_map(p, g, r)[RADIUS:-RADIUS, RADIUS:-RADIUS]
        total += float(m.sum(axis=(0, 1)).sum()) if m.ndim == 3 else float(m.sum())
    channels = pred.shape[2] if pred.ndim == 3 else 1
    return total / ((h - 2 * RADIUS) * (w - 2 * RADIUS) * channels)


def matlab_ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = 255.0) -> float:
    """MATLAB ``ssim`` of H x W x C arrays: a 3-D Gaussian (11 taps, sigma 1.5) with replicate padding."""
    import cv2

    _check(pred, gt)
    k = _gaussian_kernel()
    p, g = pred.astype(np.float64), gt.astype(np.float64)
    if p.ndim == 2:
        p, g = p[..., None], g[..., None]
    n = p.shape[2]
    # weights that mix channels: an 11-tap kernel over the replicate-padded channel axis
    mix = np.zeros((n, n))
    for out_c in range(n):
        for t, w in zip(range(-RADIUS, RADIUS + 1), k):
            mix[out_c, min(max(out_c + t, 0), n - 1)] += w

    def blur(a: np.ndarray) -> np.ndarray:
        spatial = np.stack(
            [cv2.sepFilter2D(a[..., i], cv2.CV_64F, k, k, borderType=cv2.BORDER_REPLICATE) for i in range(n)], axis=-1
        )
        return spatial @ mix.T

    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_p, mu_g = blur(p), blur(g)
    var_p = blur(p * p) - mu_p**2
    var_g = blur(g * g) - mu_g**2
    cov = blur(p * g) - mu_p * mu_g
    m = ((2 * mu_p * mu_g + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2))
    return float(m.mean())


def align_realblur(
    pred: np.ndarray, gt: np.ndarray, notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align a prediction to its ground truth as the RealBlur evaluation does (``notes`` is told
    when the alignment did not converge).

    Inputs: H x W x 3 float arrays in [0, 1]. Returns (aligned prediction, ground truth, mask), all
    multiplied by the validity mask (1 where the warp had source pixels, else 0), float32.
    """
    import cv2

    pred = pred.astype(np.float32)
    gt = gt.astype(np.float32)
    denom = float(np.sum(pred * pred))
    scaled = pred * (float(np.sum(gt * pred)) / denom if denom else 1.0)  # intensity matching
    warp = np.eye(3, dtype=np.float32)
    to_grey = (lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)) if gt.ndim == 3 else (lambda a: a)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    try:
        _, warp = cv2.findTransformECC(  # type: ignore[call-overload]  # OpenCV's stubs miss the mask=None form
            to_grey(gt), to_grey(scaled), warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5
        )
    except cv2.error:
        warp = np.eye(3, dtype=np.float32)  # ECC did not converge: score unaligned, as the reference code would fail
        if notes is not None:
            notes.append("the realblur alignment (ECC) did not converge: scored without alignment")
    h, w = gt.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    aligned = cv2.warpPerspective(scaled, warp, (w, h), flags=cv2.INTER_CUBIC + flags, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpPerspective(
        np.ones_like(scaled),
        warp,
        (w, h),
        flags=cv2.INTER_NEAREST + flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return aligned * mask, gt * mask, mask


#: the smallest side the RealBlur alignment (an ECC homography) is trusted on: below it, even
#: identical images come back misaligned by a few dB
REALBLUR_MIN_SIDE = 64


def realblur_scores(pred: np.ndarray, gt: np.ndarray, notes: list[str] | None = None) -> tuple[float, float]:
    """(PSNR, SSIM) of the RealBlur evaluation, on images scaled to [0, 1]; pairs under
    REALBLUR_MIN_SIDE pixels a side are refused (PairingError)."""
    _check(pred, gt)
    h, w = gt.shape[:2]
    if min(h, w) < REALBLUR_MIN_SIDE:
        raise PairingError(
            f"{w}x{h} is smaller than the {REALBLUR_MIN_SIDE} px a side that the realblur protocol's alignment "
            "needs; score it with --protocol basicsr"
        )
    r = _default_range(gt)
    p = pred.astype(np.float64) / r
    g = gt.astype(np.float64) / r
    if p.ndim == 2:
        p, g = np.repeat(p[..., None], 3, axis=2), np.repeat(g[..., None], 3, axis=2)
    aligned, target, mask = align_realblur(p[..., :3], g[..., :3], notes)
    aligned, target, mask = (a.astype(np.float64) for a in (aligned, target, mask))
    err = float(np.sum((target - aligned) ** 2)) / max(float(np.sum(mask)), 1.0)
    value_psnr = math.inf if err == 0 else 10 * math.log10(1.0 / err)
    m = ssim_map(aligned, target, 1.0) * mask
    m, crop = m[RADIUS:-RADIUS, RADIUS:-RADIUS], mask[RADIUS:-RADIUS, RADIUS:-RADIUS]
    per_channel = m.sum(axis=(0, 1)) / np.maximum(crop.sum(axis=(0, 1)), 1.0)
    return value_psnr, float(per_channel.mean())


def score(
    pred: np.ndarray, gt: np.ndarray, protocol: Protocol = Protocol(), notes: list[str] | None = None
) -> tuple[float, float]:
    """(PSNR, SSIM) of one pair under a protocol. Alpha channels are ignored. ``notes`` gets what the
    scores do not show (a RealBlur alignment that did not converge)."""
    _check(pred, gt)
    if pred.ndim == 3 and pred.shape[2] in (2, 4):  # grey+alpha or RGBA: score the colour only
        pred, gt = pred[..., :-1], gt[..., :-1]
    if protocol.name == "realblur":
        return realblur_scores(pred, gt, notes)
    if protocol.name == "gopro":
        if pred.dtype != np.uint8:
            raise PairingError("the gopro protocol scores 8-bit images; save 8-bit PNGs or use basicsr")
        return psnr(pred, gt, 255.0), matlab_ssim(pred, gt, 255.0)
    border, y = protocol.crop_border, protocol.y_channel
    return psnr(pred, gt, crop_border=border, y_channel=y), ssim(pred, gt, crop_border=border, y_channel=y)
