"""Chunk-parallel Triton kernels for the Mamba-1 selective scan (imported only when first used).

The sequence is cut into chunks of ``chunk`` steps (a multiple of the in-register tile ``TILE``);
a program handles one (batch, block of ``BLOCK_D`` channels, chunk), so a long scan starts
``batch x ceil(dim / BLOCK_D) x chunks`` programs instead of ``batch x dim``.

Forward, three passes:
  1. ``chunk_fwd``, FINAL=False: each chunk scanned from a zero state; its end state and the sum of
     its steps ``sum(delta)`` (the chunk's decay is ``exp(A * sum(delta))``: a product of
     ``exp(delta_t A)`` over the chunk) are stored.
  2. ``chunk_carry``: one program per (batch, channel block) walks the chunks in order and writes
     the state entering each, ``h_in[c + 1] = exp(A * sum_c) h_in[c] + end_c``.
  3. ``chunk_fwd``, FINAL=True: each chunk rerun from its entering state, writing y with softplus,
     the D skip and the silu(z) gate fused.
For the backward only ``h_in`` is kept: (batch, dim, chunks, state).

Backward, mirrored: the adjoint ``lam_t = gy_t C_t + a_{t+1} lam_{t+1}`` runs backwards in time.
  1. ``chunk_bwd_local``: each chunk's adjoint at its first step from a zero carry at its end, and the
     sum of the following steps (its decay over the chunk).
  2. ``chunk_carry_back``: the chunks walked from the last, giving the adjoint entering each chunk
     from the right.
  3. ``chunk_bwd``: each chunk's forward states recomputed from ``h_in`` (kept per tile in a scratch
     buffer that lives for this call only), then its tiles walked backwards with the carried adjoint,
     writing du, ddelta, dz; dA, dD and dbias as per-chunk partial sums (reduced afterwards, no
     races); dB and dC summed over the channel block, then added atomically over channel blocks.
"""

import triton
import triton.language as tl

from ._triton_kernels import _first_order, _softplus


@triton.jit
def _tile_states3(dt, u, A, Bt, h0):
    """States after every step of one tile for a block of channels, from the states h0 entering it.

    dt, u: (TILE, BLOCK_D); A, h0: (BLOCK_D, BLOCK_N); Bt: (TILE, BLOCK_N).
    Returns hs and each step's input x, both (TILE, BLOCK_D, BLOCK_N).
    """
    a = tl.exp(dt[:, :, None] * A[None, :, :])
    x = (dt * u)[:, :, None] * Bt[:, None, :]
    a_cum, x_cum = tl.associative_scan((a, x), 0, _first_order)
    return a_cum * h0[None, :, :] + x_cum, x


@triton.jit
def _steps(dt_ptr, bias, offs, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """delta (+ bias, softplus) at (TILE, BLOCK_D) offsets; 0 where masked, so the state stays."""
    raw = tl.load(dt_ptr + offs, mask=mask, other=0.0)
    if HAS_BIAS:
        raw = raw + bias[None, :]
    dt = raw
    if SOFTPLUS:
        dt = _softplus(raw)
    return tl.where(mask, dt, 0.0), raw


@triton.jit
def _block(A_ptr, bias_ptr, dim, dstate, HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's block of channels and states: offsets, masks, A (BLOCK_D, BLOCK_N) and delta_bias."""
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < dim
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < dstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * dstate + offs_n[None, :], mask=mask_dn, other=0.0)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0)
    return offs_d, mask_d, offs_n, mask_n, mask_dn, A, bias


@triton.jit
def chunk_fwd(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
    h_in_ptr, h_end_ptr, dt_sum_ptr,
    length, dim, dstate, chunk,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, TILE: tl.constexpr, FINAL: tl.constexpr,
):  # fmt: skip
    """Pass 1 (FINAL=False: end state and step sum from a zero state) or pass 3 (FINAL=True: y from
    the carried state). All tensors contiguous float32: u, dt, z, out (batch, dim, length); B, C
    (batch, state, length); A (dim, state); h_in, h_end (batch, dim, chunks, BLOCK_N); dt_sum
    (batch, dim, chunks)."""
    b = tl.program_id(0)
    c = tl.program_id(2)
    n_chunks = tl.cdiv(length, chunk)
    offs_d, mask_d, offs_n, mask_n, mask_dn, A, bias = _block(A_ptr, bias_ptr, dim, dstate, HAS_BIAS, BLOCK_D, BLOCK_N)
    state = ((b * dim + offs_d[:, None]) * n_chunks + c) * BLOCK_N + offs_n[None, :]
    if FINAL:
        h = tl.load(h_in_ptr + state, mask=mask_dn, other=0.0)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dt_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    last = tl.arange(0, TILE) == TILE - 1
    start = c * chunk
    end = tl.minimum(start + chunk, length)
    row = (b * dim + offs_d[None, :]) * length
    for t0 in range(start, end, TILE):
        offs_l = t0 + tl.arange(0, TILE)
        mask_l = offs_l < end
        mask_ld = mask_l[:, None] & mask_d[None, :]
        offs = row + offs_l[:, None]
        u = tl.load(u_ptr + offs, mask=mask_ld, other=0.0)
        dt, _ = _steps(dt_ptr, bias, offs, mask_ld, HAS_BIAS, SOFTPLUS)
        mask_ln = mask_l[:, None] & mask_n[None, :]
        bc = b * dstate * length + offs_n[None, :] * length + offs_l[:, None]
        Bt = tl.load(B_ptr + bc, mask=mask_ln, other=0.0)
        hs, _ = _tile_states3(dt, u, A, Bt, h)
        h = tl.sum(tl.where(last[:, None, None], hs, 0.0), axis=0)
        if FINAL:
            Ct = tl.load(C_ptr + bc, mask=mask_ln, other=0.0)
            y = tl.sum(hs * Ct[:, None, :], axis=2)
            if HAS_D:
                y = y + tl.load(D_ptr + offs_d, mask=mask_d, other=0.0)[None, :] * u
            if HAS_Z:
                zz = tl.load(z_ptr + offs, mask=mask_ld, other=0.0)
                y = y * zz * tl.sigmoid(zz)
            tl.store(out_ptr + offs, y, mask=mask_ld)
        else:
            dt_acc += tl.sum(dt, axis=0)
    if not FINAL:
        tl.store(h_end_ptr + state, h, mask=mask_dn)
        tl.store(dt_sum_ptr + (b * dim + offs_d) * n_chunks + c, dt_acc, mask=mask_d)


@triton.jit
def chunk_carry(
    A_ptr, h_end_ptr, dt_sum_ptr, h_in_ptr, dim, dstate, n_chunks,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    """Pass 2 of either direction: the value entering each chunk, carried over the chunks in order
    (REVERSE: from the last chunk back). h_end holds each chunk's own contribution from a zero
    carry, dt_sum the steps of its decay."""
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < dim
    offs_n = tl.arange(0, BLOCK_N)
    mask_dn = mask_d[:, None] & (offs_n < dstate)[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * dstate + offs_n[None, :], mask=mask_dn, other=0.0)
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for i in range(0, n_chunks):
        c = i
        if REVERSE:
            c = n_chunks - 1 - i
        state = ((b * dim + offs_d[:, None]) * n_chunks + c) * BLOCK_N + offs_n[None, :]
        tl.store(h_in_ptr + state, h, mask=mask_dn)
        steps = tl.load(dt_sum_ptr + (b * dim + offs_d) * n_chunks + c, mask=mask_d, other=0.0)
        h = tl.exp(A * steps[:, None]) * h + tl.load(h_end_ptr + state, mask=mask_dn, other=0.0)


@triton.jit
def _gy(g_ptr, z_ptr, offs, mask, HAS_Z: tl.constexpr):
    """The gradient reaching the scan's output before the gate: g, times silu(z) when gated."""
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    if HAS_Z:
        zz = tl.load(z_ptr + offs, mask=mask, other=0.0)
        g = g * zz * tl.sigmoid(zz)
    return g


@triton.jit
def chunk_bwd_local(
    dt_ptr, A_ptr, C_ptr, z_ptr, bias_ptr, g_ptr, lam_end_ptr, next_sum_ptr,
    length, dim, dstate, chunk,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, TILE: tl.constexpr,
):  # fmt: skip
    """Backward pass 1: each chunk's adjoint at its first step from a zero carry at its end, and the
    sum of the steps t+1 over its steps t (the decay that carries an adjoint across the chunk)."""
    b = tl.program_id(0)
    c = tl.program_id(2)
    n_chunks = tl.cdiv(length, chunk)
    offs_d, mask_d, offs_n, mask_n, mask_dn, A, bias = _block(A_ptr, bias_ptr, dim, dstate, HAS_BIAS, BLOCK_D, BLOCK_N)
    start = c * chunk
    end = tl.minimum(start + chunk, length)
    n_tiles = tl.cdiv(end - start, TILE)
    row = (b * dim + offs_d[None, :]) * length
    first = tl.arange(0, TILE) == 0
    lam = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    sum_next = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(0, n_tiles):
        offs_l = start + (n_tiles - 1 - i) * TILE + tl.arange(0, TILE)
        mask_l = offs_l < end
        mask_ld = mask_l[:, None] & mask_d[None, :]
        offs = row + offs_l[:, None]
        next_ld = ((offs_l + 1) < length)[:, None] & mask_l[:, None] & mask_d[None, :]
        dt_next, _ = _steps(dt_ptr, bias, offs + 1, next_ld, HAS_BIAS, SOFTPLUS)
        sum_next += tl.sum(dt_next, axis=0)
        mask_ln = mask_l[:, None] & mask_n[None, :]
        Ct = tl.load(C_ptr + b * dstate * length + offs_n[None, :] * length + offs_l[:, None], mask=mask_ln, other=0.0)
        gy = _gy(g_ptr, z_ptr, offs, mask_ld, HAS_Z)
        a_next = tl.exp(dt_next[:, :, None] * A[None, :, :])
        rhs = gy[:, :, None] * Ct[:, None, :]
        ra, rc = tl.associative_scan((tl.flip(a_next, 0), tl.flip(rhs, 0)), 0, _first_order)
        lams = tl.flip(ra * lam[None, :, :] + rc, 0)
        lam = tl.sum(tl.where(first[:, None, None], lams, 0.0), axis=0)
    state = ((b * dim + offs_d[:, None]) * n_chunks + c) * BLOCK_N + offs_n[None, :]
    tl.store(lam_end_ptr + state, lam, mask=mask_dn)
    tl.store(next_sum_ptr + (b * dim + offs_d) * n_chunks + c, sum_next, mask=mask_d)


@triton.jit
def chunk_bwd(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, g_ptr,
    h_in_ptr, lam_in_ptr, scratch_ptr,
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
    length, dim, dstate, chunk,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, TILE: tl.constexpr,
):  # fmt: skip
    """Backward pass 3: gradients of one chunk, from its entering state and its carried adjoint.

    scratch: (batch, dim, tiles, BLOCK_N), the state entering every tile of the sequence, written
    and read by the program that owns the tile. dA (batch, dim, chunks, state), dD and dbias
    (batch, dim, chunks): per-chunk partial sums."""
    b = tl.program_id(0)
    c = tl.program_id(2)
    n_chunks = tl.cdiv(length, chunk)
    n_all = tl.cdiv(length, TILE)
    offs_d, mask_d, offs_n, mask_n, mask_dn, A, bias = _block(A_ptr, bias_ptr, dim, dstate, HAS_BIAS, BLOCK_D, BLOCK_N)
    Dd = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dd = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0)
    start = c * chunk
    end = tl.minimum(start + chunk, length)
    n_tiles = tl.cdiv(end - start, TILE)
    tile0 = start // TILE
    row = (b * dim + offs_d[None, :]) * length
    state = ((b * dim + offs_d[:, None]) * n_chunks + c) * BLOCK_N + offs_n[None, :]
    last = tl.arange(0, TILE) == TILE - 1
    first = tl.arange(0, TILE) == 0
    # forward over the chunk: the state entering every tile, into the scratch buffer
    h = tl.load(h_in_ptr + state, mask=mask_dn, other=0.0)
    for i in range(0, n_tiles):
        scratch = ((b * dim + offs_d[:, None]) * n_all + tile0 + i) * BLOCK_N + offs_n[None, :]
        tl.store(scratch_ptr + scratch, h, mask=mask_dn)
        offs_l = start + i * TILE + tl.arange(0, TILE)
        mask_l = offs_l < end
        mask_ld = mask_l[:, None] & mask_d[None, :]
        offs = row + offs_l[:, None]
        u = tl.load(u_ptr + offs, mask=mask_ld, other=0.0)
        dt, _ = _steps(dt_ptr, bias, offs, mask_ld, HAS_BIAS, SOFTPLUS)
        Bt = tl.load(
            B_ptr + b * dstate * length + offs_n[None, :] * length + offs_l[:, None],
            mask=mask_l[:, None] & mask_n[None, :], other=0.0,
        )  # fmt: skip
        hs, _ = _tile_states3(dt, u, A, Bt, h)
        h = tl.sum(tl.where(last[:, None, None], hs, 0.0), axis=0)
    # backwards over the chunk's tiles, with the adjoint entering from the next chunk
    lam = tl.load(lam_in_ptr + state, mask=mask_dn, other=0.0)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(0, n_tiles):
        k = n_tiles - 1 - i
        offs_l = start + k * TILE + tl.arange(0, TILE)
        mask_l = offs_l < end
        mask_ld = mask_l[:, None] & mask_d[None, :]
        mask_ln = mask_l[:, None] & mask_n[None, :]
        offs = row + offs_l[:, None]
        u = tl.load(u_ptr + offs, mask=mask_ld, other=0.0)
        dt, raw = _steps(dt_ptr, bias, offs, mask_ld, HAS_BIAS, SOFTPLUS)
        next_ld = ((offs_l + 1) < length)[:, None] & mask_l[:, None] & mask_d[None, :]
        dt_next, _ = _steps(dt_ptr, bias, offs + 1, next_ld, HAS_BIAS, SOFTPLUS)
        bc = b * dstate * length + offs_n[None, :] * length + offs_l[:, None]
        Bt = tl.load(B_ptr + bc, mask=mask_ln, other=0.0)
        Ct = tl.load(C_ptr + bc, mask=mask_ln, other=0.0)
        scratch = ((b * dim + offs_d[:, None]) * n_all + tile0 + k) * BLOCK_N + offs_n[None, :]
        h0 = tl.load(scratch_ptr + scratch, mask=mask_dn, other=0.0)
        hs, _ = _tile_states3(dt, u, A, Bt, h0)
        # a_t h_{t-1}, from a second scan over the steps shifted by one (row 0: h0 itself). Taking
        # it as hs - x would cancel catastrophically where the decays flush to zero.
        mask_p = mask_ld & (tl.arange(0, TILE) > 0)[:, None]
        u_p = tl.load(u_ptr + offs - 1, mask=mask_p, other=0.0)
        dt_p, _ = _steps(dt_ptr, bias, offs - 1, mask_p, HAS_BIAS, SOFTPLUS)
        B_p = tl.load(B_ptr + bc - 1, mask=mask_ln & (tl.arange(0, TILE) > 0)[:, None], other=0.0)
        h_before, _ = _tile_states3(dt_p, u_p, A, B_p, h0)
        prev = tl.exp(dt[:, :, None] * A[None, :, :]) * h_before
        g = tl.load(g_ptr + offs, mask=mask_ld, other=0.0)
        gy = g
        if HAS_Z:
            zz = tl.load(z_ptr + offs, mask=mask_ld, other=0.0)
            sz = tl.sigmoid(zz)
            y = tl.sum(hs * Ct[:, None, :], axis=2) + Dd[None, :] * u
            tl.store(dz_ptr + offs, g * y * (sz + zz * sz * (1.0 - sz)), mask=mask_ld)
            gy = g * zz * sz
        a_next = tl.exp(dt_next[:, :, None] * A[None, :, :])
        rhs = gy[:, :, None] * Ct[:, None, :]
        ra, rc = tl.associative_scan((tl.flip(a_next, 0), tl.flip(rhs, 0)), 0, _first_order)
        lams = tl.flip(ra * lam[None, :, :] + rc, 0)
        lam = tl.sum(tl.where(first[:, None, None], lams, 0.0), axis=0)
        lam_B = tl.sum(lams * Bt[:, None, :], axis=2)
        lam_prev = lams * prev
        d_dt = u * lam_B + tl.sum(lam_prev * A[None, :, :], axis=2)
        dA_acc += tl.sum(lam_prev * dt[:, :, None], axis=0)
        du = dt * lam_B
        if HAS_D:
            du += gy * Dd[None, :]
            dD_acc += tl.sum(gy * u, axis=0)
        d_raw = d_dt
        if SOFTPLUS:
            d_raw = d_dt * tl.where(raw > 20.0, 1.0, tl.sigmoid(raw))
        d_raw = tl.where(mask_ld, d_raw, 0.0)
        dbias_acc += tl.sum(d_raw, axis=0)
        tl.store(du_ptr + offs, du, mask=mask_ld)
        tl.store(ddt_ptr + offs, d_raw, mask=mask_ld)
        tl.atomic_add(dB_ptr + bc, tl.sum(lams * (dt * u)[:, :, None], axis=1), mask=mask_ln)
        tl.atomic_add(dC_ptr + bc, tl.sum(hs * gy[:, :, None], axis=1), mask=mask_ln)
    tl.store(dA_ptr + ((b * dim + offs_d[:, None]) * n_chunks + c) * dstate + offs_n[None, :], dA_acc, mask=mask_dn)
    tl.store(dD_ptr + (b * dim + offs_d) * n_chunks + c, dD_acc, mask=mask_d)
    tl.store(dbias_ptr + (b * dim + offs_d) * n_chunks + c, dbias_acc, mask=mask_d)
