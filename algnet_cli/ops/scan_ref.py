"""Plain sequential selective scan: the readable reference every other backend is tested against."""

from __future__ import annotations

from typing import overload

import torch
import torch.nn.functional as F


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """True when autograd will want gradients of a scan over these inputs (None entries are skipped)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def selective_scan_reference(
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
    """Mamba-1 selective scan, one time step after another (the path the official code takes without CUDA).

    Shapes (any device; computed in float32, returned in ``u.dtype``):
      u, delta, z: (batch, dim, length)
      A:           (dim, state)            real, usually negative
      B, C:        (batch, state, length)  input-dependent
      D:           (dim,)                  skip connection
      delta_bias:  (dim,)                  added to delta before the optional softplus

    Recurrence, with ``dt = softplus(delta + delta_bias)`` when ``delta_softplus``::

        h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t      h: (batch, dim, state)
        y_t = <C_t, h_t> + D * u_t
        out = y * silu(z)                                      when z is given
    """
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    A = A.float()
    B = B.float()
    C = C.float()
    batch, dim, length = u.shape
    # every step's decay and input, in full: (batch, dim, length, state), as mamba-ssm's reference does
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    inputs = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        h = decay[:, :, t] * h + inputs[:, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.float()[None, :, None] * u
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)


@overload
def contiguous_f32(t: torch.Tensor) -> torch.Tensor: ...
@overload
def contiguous_f32(t: None) -> None: ...
def contiguous_f32(t: torch.Tensor | None) -> torch.Tensor | None:
    """A detached, contiguous float32 copy (or view) of a kernel input; None stays None."""
    return None if t is None else t.detach().float().contiguous()
