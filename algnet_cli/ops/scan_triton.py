"""Triton kernels for the Mamba-1 selective scan: forward, and backward for training.

Two kernels, one contract:

- **single pass**: one program per (batch, channel). The (state,) vector lives in registers; the
  sequence is walked in tiles of ``BLOCK_L`` steps, each tile solved with a parallel associative
  scan of the linear recurrence ``h_t = a_t h_{t-1} + b_t`` and joined to the state carried from
  the tile before.
- **chunked** (``_triton_chunked``): the sequence cut into chunks of ``CHUNK`` steps, one program per
  (batch, block of channels, chunk), with a small pass that carries the states across chunks. It
  starts ``chunks`` times more programs and reads the inputs twice.

softplus of delta, the D skip and the silu(z) gate are fused in both. :func:`use_chunked` picks
one per call. Runs on CUDA, and on the CPU under ``TRITON_INTERPRET=1`` (how the tests check it).
"""

from __future__ import annotations

import functools
import os

import torch

from .scan_ref import contiguous_f32, needs_grad

BLOCK_L = 128
#: the chunked kernel: steps per chunk, steps per in-register tile
CHUNK, CHUNK_TILE = 2048, 32
#: below this length the single pass walks at most 64 tiles in order, and the chunked kernel's
#: second read of the inputs and its three launches cost more than the parallelism gains
SWITCH_LENGTH = 4 * CHUNK


def use_chunked(batch: int, dim: int, length: int, device: torch.device | None = None) -> bool:
    """The switch: chunked when the sequence is long (``SWITCH_LENGTH`` steps or more) and the single
    pass would start too few programs to fill the GPU (fewer than 8 per multiprocessor: each one
    walks its whole sequence in order, so the card waits on the latency of one program)."""
    if length < SWITCH_LENGTH:
        return False
    sms = 132
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    return batch * dim < 8 * sms


def kernel_description() -> str:
    """Which Triton kernel runs, for ``doctor``."""
    return (
        f"chunked ({CHUNK}-step chunks) from {SWITCH_LENGTH} steps when batch x channels is under 8 per "
        f"multiprocessor (a 720p map at batch 1), else single pass"
    )


@functools.lru_cache(maxsize=1)
def _triton():
    try:
        import triton
        import triton.language as tl
    except Exception:  # not installed, or broken: the backend is simply unavailable
        return None
    return triton, tl


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(device_type: str = "cuda") -> bool:
    """True when Triton imports and can run on tensors of this device type."""
    if _triton() is None:
        return False
    return device_type == "cuda" or (device_type == "cpu" and _interpreting())


def unavailable_reason(device_type: str) -> str:
    if _triton() is None:
        return "the 'triton' scan needs the triton package (pip install triton)"
    return f"the 'triton' scan runs on CUDA tensors (or on the CPU under TRITON_INTERPRET=1), not on {device_type}"


@functools.lru_cache(maxsize=1)
def _kernels():
    from . import _triton_kernels

    return _triton_kernels.triton, _triton_kernels.scan_kernel, _triton_kernels.scan_bwd_kernel


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int | None = None,
    tile: int = CHUNK_TILE,
) -> torch.Tensor:
    """Same contract as :func:`~algnet_cli.ops.scan_ref.selective_scan_reference`.

    u, delta, z: (batch, dim, length); A: (dim, state); B, C: (batch, state, length); D, delta_bias:
    (dim,). Accumulates in float32; returns ``u.dtype``. Differentiable: when autograd needs it, the
    forward also keeps the state entering every tile (single pass) or every chunk (chunked), and
    the backward kernels recompute from there.

    ``chunk``: None picks by :func:`use_chunked`; 0 forces the single pass; otherwise the chunked
    kernel with chunks of that many steps (a multiple of ``tile``, the steps per in-register tile).
    """
    from ..errors import ScanBackendError

    if not available(u.device.type):
        raise ScanBackendError(unavailable_reason(u.device.type))
    if chunk is None:
        chunk = CHUNK if use_chunked(u.shape[0], u.shape[1], u.shape[2], u.device) else 0
    if chunk:
        if chunk % tile or tile & (tile - 1):
            raise ValueError(f"chunk {chunk} must be a multiple of the tile {tile}, a power of two")
        from .scan_triton_chunked import chunked_scan

        return chunked_scan(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), chunk, tile)
    if needs_grad(u, delta, A, B, C, D, z, delta_bias):
        return _ScanFn.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))
    out, _ = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, store_states=False)
    return out.to(u.dtype)


def _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, store_states):
    triton, kernel, _ = _kernels()
    u, delta, A, B, C, D, z, delta_bias = (contiguous_f32(t) for t in (u, delta, A, B, C, D, z, delta_bias))
    batch, dim, length = u.shape
    dstate = A.shape[1]
    block_n = triton.next_power_of_2(dstate)
    out = torch.empty(batch, dim, length, dtype=torch.float32, device=u.device)
    n_tiles = -(-length // BLOCK_L)
    states = torch.empty(batch, dim, n_tiles, block_n, dtype=torch.float32, device=u.device) if store_states else out
    dummy = out
    zp = z if z is not None else u
    kernel[(batch, dim)](
        u,
        delta,
        A,
        B,
        C,
        D if D is not None else dummy,
        zp,
        delta_bias if delta_bias is not None else dummy,
        out,
        states,
        length,
        dim,
        dstate,
        u.stride(0),
        u.stride(1),
        delta.stride(0),
        delta.stride(1),
        A.stride(0),
        B.stride(0),
        B.stride(1),
        C.stride(0),
        C.stride(1),
        zp.stride(0),
        zp.stride(1),
        out.stride(0),
        out.stride(1),
        HAS_D=D is not None,
        HAS_Z=z is not None,
        HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus),
        BLOCK_N=block_n,
        BLOCK=BLOCK_L,
        STORE_STATES=store_states,
    )
    return out, (states if store_states else None)


class _ScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        out, states = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, store_states=True)
        ctx.softplus = delta_softplus
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias)]
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        triton, _, bwd = _kernels()
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        u, delta, A, B, C, D, z, delta_bias = (contiguous_f32(t) for t in (u, delta, A, B, C, D, z, delta_bias))
        g = grad.float().contiguous()
        batch, dim, length = u.shape
        dstate = A.shape[1]
        f32 = dict(dtype=torch.float32, device=u.device)
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = torch.empty_like(u) if z is not None else du
        dB = torch.zeros(batch, dstate, length, **f32)
        dC = torch.zeros(batch, dstate, length, **f32)
        dA = torch.empty(batch, dim, dstate, **f32)
        dD = torch.empty(batch, dim, **f32)
        dbias = torch.empty(batch, dim, **f32)
        bwd[(batch, dim)](
            u,
            delta,
            A,
            B,
            C,
            D if D is not None else u,
            z if z is not None else u,
            delta_bias if delta_bias is not None else u,
            states,
            g,
            du,
            ddelta,
            dA,
            dB,
            dC,
            dD,
            dz,
            dbias,
            length,
            dim,
            dstate,
            HAS_D=D is not None,
            HAS_Z=z is not None,
            HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.softplus,
            BLOCK_N=triton.next_power_of_2(dstate),
            BLOCK=BLOCK_L,
        )
        grads = [
            du,
            ddelta,
            dA.sum(0),
            dB,
            dC,
            dD.sum(0) if D is not None else None,
            dz if z is not None else None,
            dbias.sum(0) if delta_bias is not None else None,
        ]
        grads = [None if gr is None else gr.to(dt) for gr, dt in zip(grads, ctx.dtypes)]
        return (*grads, None)
