"""Forward-only Triton kernel for the Mamba-1 selective scan.

One program per (batch, channel). The (state,) vector lives in registers; the sequence is
walked in tiles of ``BLOCK_L`` steps, each tile solved with a parallel associative scan of the
linear recurrence ``h_t = a_t h_{t-1} + b_t`` and joined to the state carried from the tile
before. softplus of delta, the D skip and the silu(z) gate are fused. Runs on CUDA, and on
the CPU under ``TRITON_INTERPRET=1`` (how the tests check it).
"""

from __future__ import annotations

import functools
import os

import torch

BLOCK_L = 128


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
def _kernel():
    from . import _triton_kernels

    return _triton_kernels.triton, _triton_kernels.scan_kernel


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
) -> torch.Tensor:
    """Same contract as :func:`~algnet_cli.ops.scan_ref.selective_scan_reference`.

    u, delta, z: (batch, dim, length); A: (dim, state); B, C: (batch, state, length); D, delta_bias:
    (dim,). Accumulates in float32; returns ``u.dtype``.
    """
    from ..errors import ScanBackendError

    if not available(u.device.type):
        raise ScanBackendError(unavailable_reason(u.device.type))
    triton, kernel = _kernel()
    batch, dim, length = u.shape
    dstate = A.shape[1]
    u, delta, B, C = (t.contiguous() for t in (u, delta, B, C))
    A = A.float().contiguous()
    z = z.contiguous() if z is not None else None
    out = torch.empty(batch, dim, length, dtype=torch.float32, device=u.device)
    dummy = out
    Dp = D.float().contiguous() if D is not None else dummy
    bias = delta_bias.float().contiguous() if delta_bias is not None else dummy
    zp = z if z is not None else u
    kernel[(batch, dim)](
        u,
        delta,
        A,
        B,
        C,
        Dp,
        zp,
        bias,
        out,
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
        BLOCK_N=triton.next_power_of_2(dstate),
        BLOCK=BLOCK_L,
    )
    return out.to(u.dtype)
