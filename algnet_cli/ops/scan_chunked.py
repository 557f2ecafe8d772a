"""Blocked selective scan for the CPU in pure PyTorch.

The sequence is cut into blocks of ``block`` steps, each block into ``nchunks`` chunks of
``chunk`` steps. Inside a block all chunks advance together, one step at a time, from a
zero state; the state entering each chunk is then carried across chunks and added back
with the chunk's running decay. Only one block of (dim x block x state) values is alive at
once, so memory does not grow with the length, and every factor is a product of
``exp(dt * A) <= 1``: no term can overflow, however large delta gets.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: values of (batch x dim x state) per step times block length that one block holds: about 2 MiB of
#: float32, which keeps a block's working tensors in cache (measured best on a 2-core Xeon)
BLOCK_ELEMENTS = 1 << 19


#: on a GPU the point is fewer kernel launches, not cache: blocks of up to 2**27 values (512 MiB)
GPU_BLOCK_ELEMENTS = 1 << 27


def default_sizes(batch: int, dim: int, dstate: int, device_type: str = "cpu") -> tuple[int, int]:
    """(chunk, block) for a problem size: blocks of about BLOCK_ELEMENTS values, chunk about sqrt(block).

    Small channel counts get longer blocks, so Python's per-step cost is spread over more work.
    """
    budget = GPU_BLOCK_ELEMENTS if device_type == "cuda" else BLOCK_ELEMENTS
    block = budget // max(1, batch * dim * dstate)
    top = 20 if device_type == "cuda" else 13
    block = 1 << max(6, min(top, block.bit_length() - 1))  # a power of two in [64, 8192] (CPU)
    chunk = 1 << ((block.bit_length() - 1) // 2)
    return chunk, block


def _steps_first(t: torch.Tensor, chunk: int) -> torch.Tensor:
    """(b, x, n_chunks * chunk) -> (chunk, b, n_chunks, x), contiguous.

    Contiguous matters: results inherit their inputs' memory order, and the step loops need each
    step's slice to be one dense run of memory.
    """
    b, x, n = t.shape
    return t.view(b, x, n // chunk, chunk).permute(3, 0, 2, 1).contiguous()


def _scan_block(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block. u, dt: (b, d, n); B, C: (b, s, n) with n = n_chunks * chunk; A: (d, s); h0: (b, d, s).

    Returns y: (b, d, n) without the D skip, and the state after the block. Work tensors are
    laid out (chunk, b, n_chunks, d, s) so that each step of the inner loop is contiguous and
    the read-out is a batched matrix-vector product.
    """
    b, d, n = u.shape
    nc = n // chunk

    steps_first = functools.partial(_steps_first, chunk=chunk)

    dtT = steps_first(dt)
    decay = _decay(dtT, A)  # (chunk, b, nc, d, s)
    h = (dtT * steps_first(u)).unsqueeze(-1) * steps_first(B).unsqueeze(3)
    for t in range(1, chunk):  # states inside every chunk at once, each from a zero start
        h[t].addcmul_(decay[t], h[t - 1])
    since_start = _decay(torch.cumsum(dtT, dim=0), A)  # decay since each chunk began
    entering = []
    state = h0
    for c in range(nc):  # the true state entering each chunk
        entering.append(state)
        state = torch.addcmul(h[-1, :, c], since_start[-1, :, c], state)
    h.addcmul_(since_start, torch.stack(entering, dim=1))
    y = torch.matmul(h, steps_first(C).unsqueeze(-1)).squeeze(-1)  # (chunk, b, nc, d)
    return y.permute(1, 3, 2, 0).reshape(b, d, n), state


def _scan_block_differentiable(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_scan_block` without in-place updates, so autograd can train through it (same layout)."""
    b, d, n = u.shape
    nc = n // chunk

    steps_first = functools.partial(_steps_first, chunk=chunk)

    dtT = steps_first(dt)
    exponent = (dtT.unsqueeze(-1) * A).clamp(min=-50.0)
    decay = torch.exp(exponent)
    inputs = (dtT * steps_first(u)).unsqueeze(-1) * steps_first(B).unsqueeze(3)
    states = [inputs[0]]
    for t in range(1, chunk):
        states.append(torch.addcmul(inputs[t], decay[t], states[-1]))
    h = torch.stack(states)
    since_start = torch.exp((torch.cumsum(dtT, dim=0).unsqueeze(-1) * A).clamp(min=-50.0))
    entering = []
    state = h0
    for c in range(nc):
        entering.append(state)
        state = torch.addcmul(h[-1, :, c], since_start[-1, :, c], state)
    h = torch.addcmul(h, since_start, torch.stack(entering, dim=1))
    y = torch.matmul(h, steps_first(C).unsqueeze(-1)).squeeze(-1)
    return y.permute(1, 3, 2, 0).reshape(b, d, n), state


def _decay(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """exp(dt * A) for dt: (..., d) and A: (d, s), with factors below 1e-20 set to exactly 0.

    Such factors change no float32 sum. Clamping the exponent first and zeroing the tiny results
    keeps exp and the products that follow out of the denormal range, where x86 arithmetic is
    many times slower.
    """
    exponent = (dt.unsqueeze(-1) * A).clamp_(min=-50.0)
    return F.threshold_(exponent.exp_(), _NEGLIGIBLE, 0.0)


_NEGLIGIBLE = 1e-20


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    chunk: int | None = None,
    block: int | None = None,
) -> torch.Tensor:
    """Same contract as :func:`selective_scan_reference` (shapes documented there).

    Memory: O(batch * dim * block * state) working space plus the (batch, dim, length) output.
    """
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # steps below 1e-20 change nothing in float32 (their decay rounds to 1, their input to 0);
    # as exact zeros they keep every later product out of the slow denormal range
    delta = F.threshold(delta, _NEGLIGIBLE, 0.0)
    A = A.float()
    B = B.float()
    C = C.float()
    b, d, length = u.shape
    auto_chunk, auto_block = default_sizes(u.shape[0], u.shape[1], A.shape[1], u.device.type)
    chunk = max(1, min(chunk or auto_chunk, length))
    block = block or auto_block
    block = max(chunk, block - block % chunk)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias)
    )
    scan_block = _scan_block_differentiable if grad else _scan_block
    pieces = []
    state = u.new_zeros(b, d, A.shape[1])
    for start in range(0, length, block):
        stop = min(start + block, length)
        n = stop - start
        pad = (-n) % chunk
        sl = slice(start, stop)
        ub, db, Bb, Cb = u[:, :, sl], delta[:, :, sl], B[:, :, sl], C[:, :, sl]
        if pad:  # dt = 0 leaves the state untouched; padded outputs are dropped
            ub, db, Bb, Cb = (F.pad(t, (0, pad)) for t in (ub, db, Bb, Cb))
        y, state = scan_block(ub.contiguous(), db.contiguous(), A, Bb.contiguous(), Cb.contiguous(), state, chunk)
        pieces.append(y[:, :, :n])
    out = torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]
    if D is not None:
        out = out + D.float()[None, :, None] * u
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(dtype_in)
