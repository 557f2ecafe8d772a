"""numba kernels for the glue of an ALGNet block on the CPU: each streams its tensor once where torch
makes several full-size passes.

Imported by :mod:`._numba_kernels` (whose import compiles everything into the same cache), never
directly. Every kernel takes ``lo, hi`` first: it runs tasks lo..hi-1, so that a few threads can
split the work (see ``scan_fused.run_tasks``).
"""

from __future__ import annotations

import numpy as np
from numba import float32, int64, njit, void

_JIT = dict(nogil=True, cache=True, fastmath={"contract", "nsz"}, error_model="numpy", boundscheck=False)

_P3 = float32[:, :, ::1]


@njit(void(int64, int64, _P3, int64, int64, _P3), **_JIT)
def box_mean(lo, hi, x, k1, k2, out):
    """Planes lo..hi-1 of the test-time local converter's pool.

    x, out: (planes, h, w). out gets the mean of every k1 x k2 window of its plane (k1 <= h, k2 <= w),
    replicate-padded back to h x w with the smaller half of the padding at the top and left: out[p, q]
    is the window whose top-left corner is (clamp(p - (k1 - 1) // 2), clamp(q - (k2 - 1) // 2)).
    Running sums in float64, one pass along the rows and one down the columns.
    """
    _, h, w = x.shape
    bh, bw = h - k1 + 1, w - k2 + 1
    top, left = (k1 - 1) // 2, (k2 - 1) // 2
    rows = np.empty((h, bw), np.float64)  # sums of k2 neighbours along each row
    acc = np.empty(bw, np.float64)
    box = np.empty((bh, bw), np.float32)
    scale = 1.0 / (k1 * k2)
    for p in range(lo, hi):
        xp = x[p]
        for r in range(h):
            xr = xp[r]
            s = 0.0
            for j in range(k2):
                s += xr[j]
            rr = rows[r]
            rr[0] = s
            for j in range(1, bw):
                s += np.float64(xr[j + k2 - 1]) - np.float64(xr[j - 1])
                rr[j] = s
        acc[:] = 0.0
        for r in range(k1):
            rr = rows[r]
            for j in range(bw):
                acc[j] += rr[j]
        for i in range(bh):
            if i:
                add, sub = rows[i + k1 - 1], rows[i - 1]
                for j in range(bw):
                    acc[j] += add[j] - sub[j]
            bi = box[i]
            for j in range(bw):
                bi[j] = acc[j] * scale
        for r in range(h):
            bi = box[min(max(r - top, 0), bh - 1)]
            o = out[p, r]
            first, last = bi[0], bi[bw - 1]
            for q in range(left):
                o[q] = first
            for j in range(bw):
                o[left + j] = bi[j]
            for q in range(left + bw, w):
                o[q] = last


@njit(void(_P3, int64, int64, int64, float32, float32[::1], float32[::1]), inline="always", **_JIT)
def _channel_stats(x, b, start, m, eps, mean, rstd):
    """mean[i] and 1 / sqrt(var[i] + eps) over the channels of pixels start .. start + m - 1 of image b
    of a (batch, channels, pixels) x: two passes, the biased variance (as NAFNet's LayerNorm2d)."""
    c = x.shape[1]
    inv = np.float32(1.0 / c)
    mean[:m] = np.float32(0.0)
    rstd[:m] = np.float32(0.0)
    for ch in range(c):
        row = x[b, ch, start : start + m]
        for i in range(m):
            mean[i] += row[i]
    for i in range(m):
        mean[i] *= inv
    for ch in range(c):
        row = x[b, ch, start : start + m]
        for i in range(m):
            d = row[i] - mean[i]
            rstd[i] += d * d
    for i in range(m):
        rstd[i] = np.float32(1.0) / np.sqrt(rstd[i] * inv + eps)


@njit(void(int64, int64, int64, _P3, float32[::1], float32[::1], float32, int64, _P3), **_JIT)
def layer_norm_channels(lo, hi, steps, x, weight, bias, eps, tokens, out):
    """Tasks lo..hi-1 of a layer norm over the channels of each pixel, channels first.

    x: (batch, channels, pixels); a task is ``steps`` pixels of one image. out = (x - mean) /
    sqrt(var + eps) * weight + bias. ``out`` is (batch, channels, pixels) like x, or with ``tokens``
    (batch, pixels, channels): the pixels as tokens, for a sequence model.
    """
    nb, c, n = x.shape
    chunks = (n + steps - 1) // steps
    mean = np.empty(steps, np.float32)
    rstd = np.empty(steps, np.float32)
    for task in range(lo, hi):
        b = task // chunks
        start = (task % chunks) * steps
        m = min(steps, n - start)
        _channel_stats(x, b, start, m, eps, mean, rstd)
        for ch in range(c):
            row = x[b, ch, start : start + m]
            wc, bc = weight[ch], bias[ch]
            if tokens:
                for i in range(m):
                    out[b, start + i, ch] = (row[i] - mean[i]) * rstd[i] * wc + bc
            else:
                o = out[b, ch, start : start + m]
                for i in range(m):
                    o[i] = (row[i] - mean[i]) * rstd[i] * wc + bc


@njit(void(int64, int64, float32[:, :, :, ::1], float32[:, ::1], float32[::1], float32[:, :, :, ::1]), **_JIT)
def depthwise3x3_gate(lo, hi, x, weight, bias, out):
    """Planes lo..hi-1 (batch x half the channels) of NAFNet's SimpleGate over a depthwise 3x3 convolution.

    x: (batch, 2c, h, w); weight: (2c, 9), the kernels row by row; bias: (2c,); out: (batch, c, h, w)
    gets conv(x)[:, :c] * conv(x)[:, c:], the convolution zero-padded by one pixel (``padding=1``).
    """
    nb, c2, h, w = x.shape
    c = c2 // 2
    acc = np.empty((2, w), np.float32)
    for task in range(lo, hi):
        b = task // c
        ch = task % c
        for r in range(h):
            for half in range(2):
                k = ch + half * c
                a = acc[half]
                a[:] = bias[k]
                for dr in range(3):
                    rr = r + dr - 1
                    if rr < 0 or rr >= h:
                        continue
                    row = x[b, k, rr]
                    w0, w1, w2 = weight[k, 3 * dr], weight[k, 3 * dr + 1], weight[k, 3 * dr + 2]
                    if w == 1:
                        a[0] += w1 * row[0]
                        continue
                    a[0] += w1 * row[0] + w2 * row[1]
                    for q in range(1, w - 1):
                        a[q] += w0 * row[q - 1] + w1 * row[q] + w2 * row[q + 1]
                    a[w - 1] += w0 * row[w - 2] + w1 * row[w - 1]
            o = out[b, ch, r]
            a0, a1 = acc[0], acc[1]
            for q in range(w):
                o[q] = a0[q] * a1[q]


@njit(inline="always", **_JIT)
def _pointwise(weight, bias, o, src, m, acc):
    """acc[:m] = bias[o] + sum_k weight[o, k] * src[k, :m]: output channel o of a 1x1 convolution over m
    pixels, the input channels as the rows of src (weight: (out, in), the rows of src past ``in`` unused)."""
    acc[:m] = bias[o]
    for k in range(weight.shape[1]):
        wk = weight[o, k]
        row = src[k]
        for i in range(m):
            acc[i] += wk * row[i]


@njit(
    void(int64, int64, int64, _P3, float32[::1], float32[::1], float32, float32[:, ::1], float32[::1],
         float32[:, ::1], float32[::1], float32[::1], _P3),
    **_JIT,
)  # fmt: skip
def gated_ffn(lo, hi, steps, y, nw, nb, eps, w4, b4, w5, b5, beta, out):
    """Tasks lo..hi-1 of a NAFNet feed-forward step with its residual, pixel by pixel, channels first.

    y, out: (batch, c, pixels); a task is ``steps`` pixels of one image. out = y + beta * conv5(gate(
    conv4(norm(y)))): norm the channel layer norm (weight nw, bias nb, eps), conv4 a 1x1 convolution
    to 2c channels (w4 (2c, c), b4), gate the product of its two halves, conv5 a 1x1 convolution (w5
    (c, c), b5), beta per channel. Every intermediate stays in a (channels, steps) scratch buffer.
    """
    nbatch, c, n = y.shape
    chunks = (n + steps - 1) // steps
    mean = np.empty(steps, np.float32)
    rstd = np.empty(steps, np.float32)
    normed = np.empty((c, steps), np.float32)
    wide = np.empty((2 * c, steps), np.float32)
    acc = np.empty(steps, np.float32)
    for task in range(lo, hi):
        b = task // chunks
        start = (task % chunks) * steps
        m = min(steps, n - start)
        _channel_stats(y, b, start, m, eps, mean, rstd)
        for ch in range(c):
            row = y[b, ch, start : start + m]
            dst = normed[ch]
            wc, bc = nw[ch], nb[ch]
            for i in range(m):
                dst[i] = (row[i] - mean[i]) * rstd[i] * wc + bc
        for o in range(2 * c):
            _pointwise(w4, b4, o, normed, m, wide[o])
        for o in range(c):
            a, g = wide[o], wide[o + c]
            for i in range(m):
                a[i] *= g[i]
        for o in range(c):
            _pointwise(w5, b5, o, wide, m, acc)
            row = y[b, o, start : start + m]
            dst = out[b, o, start : start + m]
            bo = beta[o]
            for i in range(m):
                dst[i] = row[i] + bo * acc[i]


@njit(
    void(int64, int64, int64, _P3, _P3, _P3, _P3, float32[:, ::1], float32[::1], float32[:, ::1], float32[::1],
         float32[::1], float32[::1], _P3),
    **_JIT,
)  # fmt: skip
def aggregate(lo, hi, steps, inp, x, box, g, w1, b1, w2, b2, sg, sl, out):
    """Tasks lo..hi-1 of an ALGNet block's aggregation, pixel by pixel, channels first.

    inp, x, out: (batch, c, pixels); g: (batch, pixels, c), the global branch's tokens; a task is
    ``steps`` pixels of one image. out = inp + g * sg + loc * sl, where loc is the local branch
    conv2(x * conv1(box)) (1x1 convolutions w1 (c, c), b1 and w2 (c, c), b2; box the pooled x, (batch,
    c, pixels), or (batch, c, 1) where the pool covers the whole map: conv1 of it is then one value per
    channel, computed once per task).
    """
    nbatch, c, n = x.shape
    chunks = (n + steps - 1) // steps
    per_channel = box.shape[2] == 1
    gated = np.empty((c, steps), np.float32)
    pooled = np.empty((c, steps), np.float32)
    acc = np.empty(steps, np.float32)
    for task in range(lo, hi):
        b = task // chunks
        start = (task % chunks) * steps
        m = min(steps, n - start)
        if per_channel:
            for k in range(c):
                pooled[k, 0] = box[b, k, 0]
        else:
            for k in range(c):  # this chunk of the pooled map as contiguous rows, as _pointwise reads fastest
                pooled[k, :m] = box[b, k, start : start + m]
        for o in range(c):
            xo = x[b, o, start : start + m]
            dst = gated[o]
            if per_channel:
                _pointwise(w1, b1, o, pooled, 1, acc)
                v = acc[0]
                for i in range(m):
                    dst[i] = xo[i] * v
            else:
                _pointwise(w1, b1, o, pooled, m, acc)
                for i in range(m):
                    dst[i] = xo[i] * acc[i]
        for o in range(c):
            _pointwise(w2, b2, o, gated, m, acc)
            row = inp[b, o, start : start + m]
            dst = out[b, o, start : start + m]
            so, lo_ = sg[o], sl[o]
            for i in range(m):
                dst[i] = row[i] + g[b, start + i, o] * so + acc[i] * lo_
