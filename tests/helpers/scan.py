"""Scan test helpers: a naive float64 loop written here (independent of the package), inputs, errors."""

import numpy as np
import pytest
import torch

from algnet_cli.ops.scan_ref import selective_scan_reference


def naive_scan(u, delta, A, B, C, D, z, delta_bias, softplus):
    u, delta, A, B, C = (t.double().numpy() for t in (u, delta, A, B, C))
    b, d, length = u.shape
    dt = delta + (delta_bias.double().numpy()[None, :, None] if delta_bias is not None else 0.0)
    if softplus:
        dt = np.where(dt > 20, dt, np.log1p(np.exp(np.minimum(dt, 20))))
    y = np.zeros((b, d, length))
    for bi in range(b):
        h = np.zeros((d, A.shape[1]))
        for t in range(length):
            h = np.exp(dt[bi, :, t, None] * A) * h + dt[bi, :, t, None] * B[bi, None, :, t] * u[bi, :, t, None]
            y[bi, :, t] = h @ C[bi, :, t]
    if D is not None:
        y += D.double().numpy()[None, :, None] * u
    if z is not None:
        zz = z.double().numpy()
        y *= zz / (1 + np.exp(-zz))
    return torch.from_numpy(y)


def make_inputs(b, d, n, length, delta_scale=1.0, seed=0, extras=True):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, length, generator=g)
    delta = torch.randn(b, d, length, generator=g) * delta_scale
    A = -torch.exp(torch.rand(d, n, generator=g) * 3)  # -1 .. -20
    B = torch.randn(b, n, length, generator=g)
    C = torch.randn(b, n, length, generator=g)
    D = torch.randn(d, generator=g) if extras else None
    z = torch.randn(b, d, length, generator=g) if extras else None
    bias = torch.randn(d, generator=g) if extras else None
    return u, delta, A, B, C, D, z, bias


def rel_err(a, b):
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


GRID = [
    # b, d, n, length, delta scale
    (1, 1, 1, 1, 1.0),
    (2, 3, 4, 17, 1.0),
    (1, 8, 16, 300, 1.0),
    (2, 4, 32, 257, 4.0),
    (1, 2, 8, 3000, 1.0),  # long: crosses many chunks and blocks
    (1, 4, 5, 700, 30.0),  # large delta: decays underflow to zero, nothing may overflow
]


def assert_gradients_match_reference(scan, args, softplus):
    """Output and the gradients of every given input of ``scan(*inputs)`` against autograd through the
    float64 reference loop, within a relative 1e-5 (None entries of ``args`` are absent inputs)."""
    leaves = [a.clone().requires_grad_(True) if a is not None else None for a in args]
    out = scan(*leaves)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((out * weights).sum(), [x for x in leaves if x is not None])
    ref_leaves = [a.double().clone().requires_grad_(True) if a is not None else None for a in args]
    ref_out = selective_scan_reference(*ref_leaves, softplus)
    ref_grads = torch.autograd.grad((ref_out * weights.double()).sum(), [x for x in ref_leaves if x is not None])
    assert rel_err(out.detach(), ref_out.detach()) < 1e-5
    for g, r in zip(grads, ref_grads, strict=True):
        assert rel_err(g, r) < 1e-5


def on_cpu_once(cases: list, cpu_case: int) -> list:
    """Triton's interpreter is slow: on a CPU-only machine one case per kernel and direction runs; the
    whole matrix runs where a CUDA GPU is (the ``cuda`` marker)."""
    return [pytest.param(*c, marks=() if i == cpu_case else pytest.mark.cuda) for i, c in enumerate(cases)]
