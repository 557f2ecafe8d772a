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

from .scan_ref import needs_grad

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


def _block_states(
    dtT: torch.Tensor, uT: torch.Tensor, BT: torch.Tensor, A: torch.Tensor, h0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every state of one block, in the steps-first layout.

    dtT, uT: (chunk, b, nc, d); BT: (chunk, b, nc, s); A: (d, s); h0: (b, d, s). Returns the states
    h and the per-step decays exp(dt * A), both (chunk, b, nc, d, s), and the state after the block.
    """
    decay = _decay(dtT, A)
    h = (dtT * uT).unsqueeze(-1) * BT.unsqueeze(3)
    for t in range(1, dtT.shape[0]):  # states inside every chunk at once, each from a zero start
        h[t].addcmul_(decay[t], h[t - 1])
    since_start = _decay(torch.cumsum(dtT, dim=0), A)  # decay since each chunk began
    entering = []
    state = h0
    for c in range(dtT.shape[2]):  # the true state entering each chunk
        entering.append(state)
        state = torch.addcmul(h[-1, :, c], since_start[-1, :, c], state)
    h.addcmul_(since_start, torch.stack(entering, dim=1))
    return h, decay, state


def _steps_last(t: torch.Tensor) -> torch.Tensor:
    """(chunk, b, n_chunks, x) -> (b, x, n_chunks * chunk): the inverse of :func:`_steps_first`."""
    chunk, b, nc, x = t.shape
    return t.permute(1, 3, 2, 0).reshape(b, x, nc * chunk)


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
    steps_first = functools.partial(_steps_first, chunk=chunk)
    h, _, state = _block_states(steps_first(dt), steps_first(u), steps_first(B), A, h0)
    y = torch.matmul(h, steps_first(C).unsqueeze(-1)).squeeze(-1)  # (chunk, b, nc, d)
    return _steps_last(y), state


def _scan_block_backward(
    gy: torch.Tensor,
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor,
    g_state: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, ...]:
    """Gradients of one block of :func:`_scan_block`, given those of its outputs y and final state.

    The block's states are recomputed, then the adjoint runs backwards in time with the same
    chunked scheme as the forward: every chunk from a zero start at its end, then the adjoint
    leaving each chunk carried right to left and added back with the decay to the chunk's end.
    Returns the gradients of u, dt, A, B, C and h0.
    """
    steps_first = functools.partial(_steps_first, chunk=chunk)
    dtT, uT, BT, CT, gyT = (steps_first(t) for t in (dt, u, B, C, gy))
    h, decay, _ = _block_states(dtT, uT, BT, A, h0)
    gh = gyT.unsqueeze(-1) * CT.unsqueeze(3)  # (chunk, b, nc, d, s)
    for t in range(chunk - 2, -1, -1):
        gh[t].addcmul_(decay[t + 1], gh[t + 1])
    after = torch.cumsum(dtT.flip(0), dim=0).flip(0)  # sum of dt from each step to its chunk's end
    to_end = _decay(torch.cat([after[1:], torch.zeros_like(after[:1])]), A)  # decay over the steps after t
    leaving = [g_state] * dtT.shape[2]
    carry = g_state
    for c in range(dtT.shape[2] - 1, -1, -1):
        leaving[c] = carry
        carry = decay[0, :, c] * torch.addcmul(gh[0, :, c], to_end[0, :, c], carry)  # adjoint entering chunk c
    gh.addcmul_(to_end, torch.stack(leaving, dim=1))
    g_in = torch.matmul(gh, BT.unsqueeze(-1)).squeeze(-1)  # gradient of dt * u
    gB = torch.matmul((dtT * uT).unsqueeze(-2), gh).squeeze(-2)
    gC = torch.matmul(gyT.unsqueeze(-2), h).squeeze(-2)
    entering = torch.cat([h0.unsqueeze(1), h[-1, :, :-1]], dim=1)  # state before each chunk's first step
    h_prev = torch.cat([entering.unsqueeze(0), h[:-1]], dim=0)
    g_exp = h_prev.mul_(gh).mul_(decay)  # gradient of dt * A, step by step
    gdt = torch.addcmul((g_exp * A).sum(-1), g_in, uT)
    gA = (g_exp * dtT.unsqueeze(-1)).sum(dim=(0, 1, 2))
    gu = g_in * dtT
    return _steps_last(gu), _steps_last(gdt), gA, _steps_last(gB), _steps_last(gC), carry


def _decay(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """exp(dt * A) for dt: (..., d) and A: (d, s), with factors below 1e-20 set to exactly 0.

    Such factors change no float32 sum. Clamping the exponent first and zeroing the tiny results
    keeps exp and the products that follow out of the denormal range, where x86 arithmetic is
    many times slower.
    """
    exponent = (dt.unsqueeze(-1) * A).clamp_(min=-50.0)
    return F.threshold_(exponent.exp_(), _NEGLIGIBLE, 0.0)  # type: ignore[attr-defined]  # public, not in the stubs


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
    auto_chunk, auto_block = default_sizes(b, d, A.shape[1], u.device.type)
    chunk = max(1, min(chunk or auto_chunk, length))
    block = block or auto_block
    block = max(chunk, block - block % chunk)
    if needs_grad(u, delta, A, B, C):  # D, z and delta_bias get theirs from autograd, outside the scan
        out = _ChunkedScan.apply(u, delta, A, B, C, chunk, block)
    else:
        out = _scan(u, delta, A, B, C, chunk, block)[0]
    if D is not None:
        out = out + D.float()[None, :, None] * u
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(dtype_in)


def _blocks(length: int, block: int, chunk: int):
    """(slice, padding) of each block; padding makes a block a whole number of chunks."""
    for start in range(0, length, block):
        stop = min(start + block, length)
        yield slice(start, stop), (-(stop - start)) % chunk


def _padded(t: torch.Tensor, sl: slice, pad: int) -> torch.Tensor:
    """One block of t, padded with zeros: dt = 0 leaves the state untouched, padded outputs are dropped."""
    t = t[:, :, sl]
    return (F.pad(t, (0, pad)) if pad else t).contiguous()


def _scan(u, delta, A, B, C, chunk: int, block: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """y without the D skip, block by block, and the state entering each block."""
    b, d, length = u.shape
    pieces, entering = [], []
    state = u.new_zeros(b, d, A.shape[1])
    for sl, pad in _blocks(length, block, chunk):
        entering.append(state)
        y, state = _scan_block(
            _padded(u, sl, pad), _padded(delta, sl, pad), A, _padded(B, sl, pad), _padded(C, sl, pad), state, chunk
        )
        pieces.append(y[:, :, : sl.stop - sl.start])
    return (torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]), entering


class _ChunkedScan(torch.autograd.Function):
    """The blocked scan with a hand-written backward.

    Autograd through the step loops would record every step's slice and add each gradient back
    into a full-size zero tensor; this backward instead recomputes one block's states from the
    saved state entering it and runs the adjoint through the same chunked scheme as the forward.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk: int, block: int):
        y, entering = _scan(u, delta, A, B, C, chunk, block)
        ctx.save_for_backward(u, delta, A, B, C, *entering)
        ctx.sizes = chunk, block
        return y

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, B, C, *entering = ctx.saved_tensors
        chunk, block = ctx.sizes
        gy = gy.float()
        grads: list[list[torch.Tensor]] = [[], [], [], []]  # u, delta, B, C, last block first
        gA = torch.zeros_like(A)
        g_state = torch.zeros_like(entering[0])
        for (sl, pad), h0 in reversed(list(zip(_blocks(u.shape[-1], block, chunk), entering, strict=True))):
            gu, gdt, gA_block, gB, gC, g_state = _scan_block_backward(
                _padded(gy, sl, pad),
                _padded(u, sl, pad),
                _padded(delta, sl, pad),
                A,
                _padded(B, sl, pad),
                _padded(C, sl, pad),
                h0,
                g_state,
                chunk,
            )
            gA += gA_block
            n = sl.stop - sl.start
            for acc, g in zip(grads, (gu, gdt, gB, gC), strict=True):
                acc.append(g[:, :, :n])
        gu, gdt, gB, gC = (torch.cat(acc[::-1], dim=-1) for acc in grads)
        return gu, gdt, gA, gB, gC, None, None
