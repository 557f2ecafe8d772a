"""Two small numba kernels, cached, under the names the fused scan's cache check looks for: a stand-in
for the real kernel module where a test is about the cache, not the kernels (they compile in a second)."""

import numpy as np
from numba import float32, njit, void

_JIT = dict(nogil=True, cache=True)


@njit(void(float32[::1], float32[::1]), **_JIT)
def scan_forward(x, out):
    acc = np.float32(0.0)
    for i in range(x.shape[0]):
        acc += x[i]
        out[i] = acc


@njit(void(float32[::1], float32[::1]), **_JIT)
def scan_backward(g, out):
    acc = np.float32(0.0)
    for i in range(g.shape[0] - 1, -1, -1):
        acc += g[i]
        out[i] = acc
