"""float32 arithmetic for the fused CPU kernels, in forms that LLVM vectorises: 2**x, exp, the scan's
decays, log(1 + e) and the sigmoid, with the flags the kernels compile with.

``math.exp`` is a libm call that numba cannot vectorise without Intel's SVML; these are plain
arithmetic (``benchmarks/scan_floor.py`` measures them against it). Imported by :mod:`._numba_kernels`,
whose import compiles everything into one cache.
"""

from __future__ import annotations

import numpy as np
from numba import float32, njit

#: decays exp(dt * A) and steps dt below this are exact zeros (as in the chunked scan)
NEGLIGIBLE = 1e-20
LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)
_LOG2_NEGLIGIBLE = np.float32(np.log2(NEGLIGIBLE))

_FLAGS = {"reassoc", "contract", "nsz", "arcp"}
_JIT = dict(nogil=True, cache=True, fastmath=_FLAGS, error_model="numpy", boundscheck=False)

# 2**f on [-1/2, 1/2]: a degree-6 Chebyshev fit, under 1e-7 relative in float32
_P0, _P1, _P2, _P3 = (
    np.float32(1.0),
    np.float32(0.6931471824645996),
    np.float32(0.24022650718688965),
    np.float32(0.05550327152013779),
)
_P4, _P5, _P6 = np.float32(0.00961802527308464), np.float32(0.001340043731033802), np.float32(0.00015469736536033452)


@njit(float32(float32), inline="always", **_JIT)
def _pow2_reduced(x):
    """2**x for x in [-126, 127] (above -126 unclamped: the caller masks), in plain arithmetic that
    vectorises: x = k + f with |f| <= 1/2, a polynomial for 2**f, and k written into the exponent bits."""
    kf = np.rint(x)
    f = x - kf
    p = _P6 * f + _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + _P0
    return p * np.int32((np.int32(kf) + np.int32(127)) << np.int32(23)).view(np.float32)


@njit(float32(float32), inline="always", **_JIT)
def _exp2(x):
    """2**x in float32 for any x (clamped to [-126, 127]).

    ``math.exp`` is a libm call that LLVM cannot vectorise; :func:`_pow2_reduced` can be.
    """
    return _pow2_reduced(min(max(x, np.float32(-126.0)), np.float32(127.0)))


@njit(float32(float32), inline="always", **_JIT)
def _exp(x):
    return _exp2(x * LOG2E)


@njit(float32(float32), inline="always", **_JIT)
def _decay(x2):
    """2**x2 for x2 = dt * A * log2(e), exactly 0 where it would fall below 1e-20.

    :func:`_exp2` without its lower clamp: below 2**-66 the select discards whatever the
    exponent bits made of x2.
    """
    e = _pow2_reduced(min(x2, np.float32(127.0)))
    return e if x2 > _LOG2_NEGLIGIBLE else np.float32(0.0)


@njit(float32(float32), inline="always", **_JIT)
def _log1p_small(e):
    """log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3 (series to s**15)."""
    s = e / (np.float32(2.0) + e)
    s2 = s * s
    p = np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


@njit(float32(float32), inline="always", **_JIT)
def _sigmoid(x):
    return np.float32(1.0) / (np.float32(1.0) + _exp(-x))
