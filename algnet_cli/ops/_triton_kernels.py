"""The Triton kernel source, imported only when the 'triton' scan is first used.

Kept apart because ``triton.jit`` functions must live at module level, and because importing
Triton is slow and optional.
"""

import triton
import triton.language as tl


@triton.jit
def _first_order(a1, b1, a2, b2):
    # apply (a1, b1) then (a2, b2) to h:  a2 * (a1 * h + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _softplus(x):
    small = tl.exp(tl.minimum(x, 20.0))
    return tl.where(x > 20.0, x, tl.where(x < -15.0, small, tl.log(1.0 + small)))


@triton.jit
def _tile_states(dt, u, A, Bt, h0):
    """States after every step of one tile, from the state h0 entering it; also each step's input.

    dt, u: (BLOCK,); A, h0: (BLOCK_N,); Bt: (BLOCK, BLOCK_N). Returns hs and x, both (BLOCK, BLOCK_N).
    """
    a = tl.exp(dt[:, None] * A[None, :])
    x = (dt * u)[:, None] * Bt
    a_cum, x_cum = tl.associative_scan((a, x), 0, _first_order)
    return a_cum * h0[None, :] + x_cum, x


@triton.jit
def scan_kernel(
    u_ptr,
    dt_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    z_ptr,
    bias_ptr,
    out_ptr,
    states_ptr,
    length,
    dim,
    dstate,
    s_ub,
    s_ud,
    s_dtb,
    s_dtd,
    s_Ad,
    s_Bb,
    s_Bn,
    s_Cb,
    s_Cn,
    s_zb,
    s_zd,
    s_ob,
    s_od,
    HAS_D: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK: tl.constexpr,
    STORE_STATES: tl.constexpr,
):
    # STORE_STATES: write the state entering every tile to states[b, d, tile, :] for the backward pass
    b = tl.program_id(0)
    d = tl.program_id(1)
    n_tiles = tl.cdiv(length, BLOCK)
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < dstate
    A = tl.load(A_ptr + d * s_Ad + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    if HAS_D:
        Dd = tl.load(D_ptr + d).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    h = tl.zeros([BLOCK_N], dtype=tl.float32)
    last = tl.arange(0, BLOCK) == BLOCK - 1
    for start in range(0, length, BLOCK):
        if STORE_STATES:
            tile = start // BLOCK
            tl.store(states_ptr + ((b * dim + d) * n_tiles + tile) * BLOCK_N + offs_n, h)
        offs_l = start + tl.arange(0, BLOCK)
        mask_l = offs_l < length
        u = tl.load(u_ptr + b * s_ub + d * s_ud + offs_l, mask=mask_l, other=0.0).to(tl.float32)
        dt = tl.load(dt_ptr + b * s_dtb + d * s_dtd + offs_l, mask=mask_l, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_l, dt, 0.0)  # steps past the end leave the state as it is
        mask2 = mask_l[:, None] & mask_n[None, :]
        Bt = tl.load(B_ptr + b * s_Bb + offs_n[None, :] * s_Bn + offs_l[:, None], mask=mask2, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + b * s_Cb + offs_n[None, :] * s_Cn + offs_l[:, None], mask=mask2, other=0.0).to(tl.float32)
        hs, _ = _tile_states(dt, u, A, Bt, h)  # (BLOCK, BLOCK_N): the state after every step
        y = tl.sum(hs * Ct, axis=1)
        h = tl.sum(tl.where(last[:, None], hs, 0.0), axis=0)
        if HAS_D:
            y = y + Dd * u
        if HAS_Z:
            zz = tl.load(z_ptr + b * s_zb + d * s_zd + offs_l, mask=mask_l, other=0.0).to(tl.float32)
            y = y * zz * tl.sigmoid(zz)
        tl.store(out_ptr + b * s_ob + d * s_od + offs_l, y, mask=mask_l)


@triton.jit
def scan_bwd_kernel(
    u_ptr,
    dt_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    z_ptr,
    bias_ptr,
    states_ptr,
    g_ptr,
    du_ptr,
    ddt_ptr,
    dA_ptr,
    dB_ptr,
    dC_ptr,
    dD_ptr,
    dz_ptr,
    dbias_ptr,
    length,
    dim,
    dstate,
    HAS_D: tl.constexpr,
    HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Gradients of the scan for one (batch, channel), walking the tiles from the last to the first.

    All tensors contiguous float32: u, dt, z, g, du, ddt, dz (batch, dim, length); B, C, dB, dC
    (batch, state, length), dB and dC accumulated atomically over channels; A (dim, state);
    states (batch, dim, tiles, BLOCK_N) from the forward; per-program partial sums dA (batch, dim,
    state), dD and dbias (batch, dim). Within a tile the forward states are recomputed from the
    stored entering state, and the adjoint  lam_t = gy_t C_t + a_{t+1} lam_{t+1}  is solved with
    the same associative scan run on the flipped tile.
    """
    b = tl.program_id(0)
    d = tl.program_id(1)
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < dstate
    A = tl.load(A_ptr + d * dstate + offs_n, mask=mask_n, other=0.0)
    Dd = 0.0
    if HAS_D:
        Dd = tl.load(D_ptr + d)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d)
    n_tiles = tl.cdiv(length, BLOCK)
    row = (b * dim + d) * length
    lam_carry = tl.zeros([BLOCK_N], dtype=tl.float32)
    dA_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK], dtype=tl.float32)
    first = tl.arange(0, BLOCK) == 0
    for i in range(0, n_tiles):
        tile = n_tiles - 1 - i
        offs_l = tile * BLOCK + tl.arange(0, BLOCK)
        mask_l = offs_l < length
        mask2 = mask_l[:, None] & mask_n[None, :]
        u = tl.load(u_ptr + row + offs_l, mask=mask_l, other=0.0)
        raw = tl.load(dt_ptr + row + offs_l, mask=mask_l, other=0.0) + bias
        dt = raw
        if SOFTPLUS:
            dt = _softplus(raw)
        dt = tl.where(mask_l, dt, 0.0)
        # the step after each one (for the adjoint's decay); zero decay past the end
        mask_next = (offs_l + 1) < length
        raw_next = tl.load(dt_ptr + row + offs_l + 1, mask=mask_next, other=0.0) + bias
        dt_next = raw_next
        if SOFTPLUS:
            dt_next = _softplus(raw_next)
        Bt = tl.load(B_ptr + b * dstate * length + offs_n[None, :] * length + offs_l[:, None], mask=mask2, other=0.0)
        Ct = tl.load(C_ptr + b * dstate * length + offs_n[None, :] * length + offs_l[:, None], mask=mask2, other=0.0)
        g = tl.load(g_ptr + row + offs_l, mask=mask_l, other=0.0)
        # recompute the forward states of this tile
        h0 = tl.load(states_ptr + ((b * dim + d) * n_tiles + tile) * BLOCK_N + offs_n)
        hs, _ = _tile_states(dt, u, A, Bt, h0)
        gy = g
        if HAS_Z:
            zz = tl.load(z_ptr + row + offs_l, mask=mask_l, other=0.0)
            sz = tl.sigmoid(zz)
            y = tl.sum(hs * Ct, axis=1) + Dd * u
            tl.store(dz_ptr + row + offs_l, g * y * (sz + zz * sz * (1.0 - sz)), mask=mask_l)
            gy = g * zz * sz
        # adjoint, solved backwards in time on the flipped tile
        a_next = tl.where(mask_next[:, None] & mask_n[None, :], tl.exp(dt_next[:, None] * A[None, :]), 0.0)
        c = gy[:, None] * Ct
        ra, rc = tl.associative_scan((tl.flip(a_next, 0), tl.flip(c, 0)), 0, _first_order)
        lam = tl.flip(ra * lam_carry[None, :] + rc, 0)
        lam_carry = tl.sum(tl.where(first[:, None], lam, 0.0), axis=0)
        # gradients
        lam_B = tl.sum(lam * Bt, axis=1)
        # a_t h_{t-1}, from a second scan over the steps shifted by one (row 0: h0 itself). Taking
        # it as hs - x would cancel catastrophically where the decays flush to zero.
        mask_p = mask_l & (tl.arange(0, BLOCK) > 0)
        u_p = tl.load(u_ptr + row + offs_l - 1, mask=mask_p, other=0.0)
        dt_p = tl.load(dt_ptr + row + offs_l - 1, mask=mask_p, other=0.0) + bias
        if SOFTPLUS:
            dt_p = _softplus(dt_p)
        dt_p = tl.where(mask_p, dt_p, 0.0)
        B_p = tl.load(
            B_ptr + b * dstate * length + offs_n[None, :] * length + offs_l[:, None] - 1,
            mask=mask_p[:, None] & mask_n[None, :],
            other=0.0,
        )
        h_before, _ = _tile_states(dt_p, u_p, A, B_p, h0)
        prev = tl.exp(dt[:, None] * A[None, :]) * h_before
        lam_prev = lam * prev
        d_dt = u * lam_B + tl.sum(lam_prev * A[None, :], axis=1)
        dA_acc += tl.sum(lam_prev * dt[:, None], axis=0)
        du = dt * lam_B
        if HAS_D:
            du += gy * Dd
            dD_acc += gy * u
        d_raw = d_dt
        if SOFTPLUS:
            d_raw = d_dt * tl.where(raw > 20.0, 1.0, tl.sigmoid(raw))
        d_raw = tl.where(mask_l, d_raw, 0.0)
        dbias_acc += d_raw
        tl.store(du_ptr + row + offs_l, du, mask=mask_l)
        tl.store(ddt_ptr + row + offs_l, d_raw, mask=mask_l)
        bc = b * dstate * length + offs_n[None, :] * length + offs_l[:, None]
        tl.atomic_add(dB_ptr + bc, lam * (dt * u)[:, None], mask=mask2)
        tl.atomic_add(dC_ptr + bc, gy[:, None] * hs, mask=mask2)
    tl.store(dA_ptr + (b * dim + d) * dstate + offs_n, dA_acc, mask=mask_n)
    tl.store(dD_ptr + b * dim + d, tl.sum(dD_acc, axis=0))
    tl.store(dbias_ptr + b * dim + d, tl.sum(dbias_acc, axis=0))
