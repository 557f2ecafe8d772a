"""The chunk-parallel Triton scan: launches of the kernels in ``_triton_chunked``, forward and backward.

Memory kept from the forward for the backward: the state entering each chunk, (batch, dim, chunks,
state). The backward adds, for the length of its own call, the state entering each tile.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .scan_ref import contiguous_f32 as _f32
from .scan_ref import needs_grad

#: channels per program
CHUNK_BLOCK_D = 4


@functools.lru_cache(maxsize=1)
def _kernels():
    from . import _triton_chunked

    return _triton_chunked


def chunked_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, chunk: int, tile: int) -> torch.Tensor:
    if needs_grad(u, delta, A, B, C, D, z, delta_bias):
        return _ChunkedFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk, tile)
    out, _ = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk, tile)
    return out.to(u.dtype)


def _geometry(u: torch.Tensor, A: torch.Tensor, chunk: int):
    import triton

    batch, dim, length = u.shape
    n_chunks = -(-length // chunk)
    block_n = triton.next_power_of_2(A.shape[1])
    return batch, dim, length, n_chunks, block_n, (batch, -(-dim // CHUNK_BLOCK_D), n_chunks)


def _flags(D, z, delta_bias, softplus: bool) -> dict:
    return dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus)


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus: bool, chunk: int, tile: int):
    """y, and the state entering every chunk."""
    k = _kernels()
    u, delta, A, B, C, D, z, delta_bias = (_f32(t) for t in (u, delta, A, B, C, D, z, delta_bias))
    batch, dim, length, n_chunks, block_n, grid = _geometry(u, A, chunk)
    f32: dict[str, Any] = dict(dtype=torch.float32, device=u.device)
    out = torch.empty(batch, dim, length, **f32)
    h_end = torch.empty(batch, dim, n_chunks, block_n, **f32)
    h_in = torch.empty_like(h_end)
    dt_sum = torch.empty(batch, dim, n_chunks, **f32)
    pointers = (u, delta, A, B, C, D if D is not None else u, z if z is not None else u)
    bias = delta_bias if delta_bias is not None else u
    sizes = (length, dim, A.shape[1], chunk)
    blocks = dict(BLOCK_D=CHUNK_BLOCK_D, BLOCK_N=block_n, TILE=tile)
    flags = _flags(D, z, delta_bias, softplus)
    k.chunk_fwd[grid](*pointers, bias, out, h_in, h_end, dt_sum, *sizes, **flags, **blocks, FINAL=False)
    k.chunk_carry[grid[:2]](
        A, h_end, dt_sum, h_in, dim, A.shape[1], n_chunks, BLOCK_D=CHUNK_BLOCK_D, BLOCK_N=block_n, REVERSE=False
    )
    k.chunk_fwd[grid](*pointers, bias, out, h_in, h_end, dt_sum, *sizes, **flags, **blocks, FINAL=True)
    return out, h_in


def _backward(saved, g, softplus: bool, chunk: int, tile: int):
    """Gradients of (u, delta, A, B, C, D, z, delta_bias); None for the absent ones."""
    k = _kernels()
    u, delta, A, B, C, D, z, delta_bias, h_in = saved
    u, delta, A, B, C, D, z, delta_bias = (_f32(t) for t in (u, delta, A, B, C, D, z, delta_bias))
    g = g.float().contiguous()
    batch, dim, length, n_chunks, block_n, grid = _geometry(u, A, chunk)
    dstate = A.shape[1]
    f32: dict[str, Any] = dict(dtype=torch.float32, device=u.device)
    flags = _flags(D, z, delta_bias, softplus)
    blocks = dict(BLOCK_D=CHUNK_BLOCK_D, BLOCK_N=block_n, TILE=tile)
    bias = delta_bias if delta_bias is not None else u
    zp = z if z is not None else u
    sizes = (length, dim, dstate, chunk)
    # 1-2: the adjoint entering every chunk from the right
    lam_local = torch.empty(batch, dim, n_chunks, block_n, **f32)
    next_sum = torch.empty(batch, dim, n_chunks, **f32)
    k.chunk_bwd_local[grid](
        delta, A, C, zp, bias, g, lam_local, next_sum, *sizes,
        HAS_Z=flags["HAS_Z"], HAS_BIAS=flags["HAS_BIAS"], SOFTPLUS=softplus, **blocks,
    )  # fmt: skip
    lam_in = torch.empty_like(lam_local)
    k.chunk_carry[grid[:2]](
        A, lam_local, next_sum, lam_in, dim, dstate, n_chunks, BLOCK_D=CHUNK_BLOCK_D, BLOCK_N=block_n, REVERSE=True
    )
    del lam_local, next_sum
    # 3: every chunk's gradients
    scratch = torch.empty(batch, dim, -(-length // tile), block_n, **f32)
    du, ddelta = torch.empty_like(u), torch.empty_like(u)
    dz = torch.empty_like(u) if z is not None else du
    dA = torch.empty(batch, dim, n_chunks, dstate, **f32)
    dD = torch.empty(batch, dim, n_chunks, **f32)
    dbias = torch.empty(batch, dim, n_chunks, **f32)
    dB = torch.zeros(batch, dstate, length, **f32)
    dC = torch.zeros(batch, dstate, length, **f32)
    k.chunk_bwd[grid](
        u, delta, A, B, C, D if D is not None else u, zp, bias, g, h_in, lam_in, scratch,
        du, ddelta, dz, dA, dD, dbias, dB, dC, *sizes, **flags, **blocks,
    )  # fmt: skip
    return [
        du,
        ddelta,
        dA.sum((0, 2)),
        dB,
        dC,
        dD.sum((0, 2)) if D is not None else None,
        dz if z is not None else None,
        dbias.sum((0, 2)) if delta_bias is not None else None,
    ]


class _ChunkedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, chunk, tile):
        out, h_in = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, chunk, tile)
        ctx.settings = (softplus, chunk, tile)
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias)]
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h_in)
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        grads = _backward(ctx.saved_tensors, grad, *ctx.settings)
        grads = [None if gr is None else gr.to(dt) for gr, dt in zip(grads, ctx.dtypes)]
        return (*grads, None, None, None)
