"""PSNR/SSIM against scikit-image and independent computations; the RealBlur alignment."""

import math

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from algnet_cli.errors import PairingError
from algnet_cli.metrics import Protocol, matlab_ssim, psnr, realblur_scores, score, ssim


def _pair(bits, seed=0, shape=None):
    rng = np.random.default_rng(seed)
    gt = data.astronaut()[40:240, 60:310] if shape is None else rng.integers(0, 256, shape, dtype=np.uint8)
    if bits == 16:
        gt = gt.astype(np.uint16) * 257 + rng.integers(0, 257, gt.shape).astype(np.uint16)
        top, sigma, dtype = 65535, 1500, np.uint16
    else:
        top, sigma, dtype = 255, 6, np.uint8
    pred = np.clip(gt.astype(np.float64) + rng.normal(0, sigma, gt.shape), 0, top).astype(dtype)
    return pred, gt, top


def _sk_ssim(p, g, top):
    return sk_ssim(
        g,
        p,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=top,
        channel_axis=2 if p.ndim == 3 else None,
    )


@pytest.mark.parametrize("bits", [8, 16])
def test_psnr_and_ssim_equal_scikit_image(bits):
    pred, gt, top = _pair(bits)
    assert abs(psnr(pred, gt) - sk_psnr(gt, pred, data_range=top)) < 1e-6
    assert abs(ssim(pred, gt) - _sk_ssim(pred, gt, top)) < 1e-6
    grey_p, grey_g = pred[..., 0], gt[..., 0]
    assert abs(ssim(grey_p, grey_g) - _sk_ssim(grey_p, grey_g, top)) < 1e-6


def test_ssim_on_tall_odd_images_equals_scikit_image():
    # many row strips, an odd size, and random content
    pred, gt, top = _pair(8, seed=3, shape=(1037, 97, 3))
    assert abs(ssim(pred, gt) - _sk_ssim(pred, gt, top)) < 1e-6


def _y_independent(img, top):
    x = img.astype(np.float64) / top
    # BT.601 limited range, as in BasicSR's rgb2ycbcr(y_only=True): on 0..255, then back to the data range
    return (x @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0 * top


@pytest.mark.parametrize("bits", [8, 16])
def test_y_channel_and_crop_border_agree_with_independent_computation(bits):
    pred, gt, top = _pair(bits, seed=1)
    c = 4
    yp, yg = _y_independent(pred, top)[c:-c, c:-c], _y_independent(gt, top)[c:-c, c:-c]
    expected_psnr = 10 * math.log10(top**2 / np.mean((yp - yg) ** 2))
    assert abs(psnr(pred, gt, crop_border=c, y_channel=True) - expected_psnr) < 1e-6
    expected_ssim = sk_ssim(yg, yp, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=top)
    assert abs(ssim(pred, gt, crop_border=c, y_channel=True) - expected_ssim) < 1e-6
    # cropping alone
    assert abs(psnr(pred, gt, crop_border=c) - sk_psnr(gt[c:-c, c:-c], pred[c:-c, c:-c], data_range=top)) < 1e-6
    assert abs(ssim(pred, gt, crop_border=c) - _sk_ssim(pred[c:-c, c:-c], gt[c:-c, c:-c], top)) < 1e-6


@pytest.mark.parametrize("protocol", ["basicsr", "gopro"])
def test_identical_images(protocol):
    _, gt, _ = _pair(8)
    p, s = score(gt, gt.copy(), Protocol(protocol))
    assert p == math.inf and abs(s - 1.0) < 1e-12


def test_size_mismatch_is_a_pairing_error():
    pred, gt, _ = _pair(8)
    with pytest.raises(PairingError, match="size mismatch"):
        score(pred[:-1], gt)


def test_matlab_ssim_grey_equals_a_plain_replicate_padded_gaussian():
    # for one channel the 3-D filter is a 2-D Gaussian; compute it with scipy directly
    from scipy.ndimage import gaussian_filter

    pred, gt, _ = _pair(8, seed=2)
    p, g = pred[..., 1].astype(np.float64), gt[..., 1].astype(np.float64)
    f = lambda a: gaussian_filter(a, 1.5, truncate=5 / 1.5, mode="nearest")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mp, mg = f(p), f(g)
    vp, vg, cov = f(p * p) - mp**2, f(g * g) - mg**2, f(p * g) - mp * mg
    expected = np.mean(((2 * mp * mg + c1) * (2 * cov + c2)) / ((mp**2 + mg**2 + c1) * (vp + vg + c2)))
    assert abs(matlab_ssim(pred[..., 1:2], gt[..., 1:2]) - expected) < 1e-9
    # and colour mixes neighbouring channels, so it differs from the per-channel mean
    assert matlab_ssim(pred, gt) != pytest.approx(ssim(pred, gt), abs=1e-6)


def test_realblur_recovers_a_small_shift_and_rotation():
    gt = data.astronaut()[100:356, 120:376]
    h, w = gt.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 1.0, 1.0)
    m[:, 2] += (2.5, -1.5)
    moved = cv2.warpAffine(gt, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    plain_psnr, plain_ssim = score(moved, gt, Protocol("basicsr"))
    rb_psnr, rb_ssim = realblur_scores(moved, gt)
    assert plain_psnr < 22
    assert rb_psnr > plain_psnr + 10
    assert rb_ssim > plain_ssim + 0.2


def test_realblur_masks_the_invalid_border():
    from algnet_cli.metrics import align_realblur

    gt = data.astronaut()[100:356, 120:376].astype(np.float64) / 255
    shifted = np.zeros_like(gt)
    shifted[:, 6:] = gt[:, :-6]  # content moved right: the first columns have no source
    shifted[:, :6] = gt[:, :1]
    aligned, target, mask = align_realblur(shifted, gt)
    assert mask.min() == 0 and mask.mean() > 0.9
    assert (target[mask == 0] == 0).all() and (aligned[mask == 0] == 0).all()
    assert mask[:, -3:].min() == 0  # the invalid strip is where the warp pulled from outside
