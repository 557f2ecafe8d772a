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
):
    b = tl.program_id(0)
    d = tl.program_id(1)
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
        offs_l = start + tl.arange(0, BLOCK)
        mask_l = offs_l < length
        u = tl.load(u_ptr + b * s_ub + d * s_ud + offs_l, mask=mask_l, other=0.0).to(tl.float32)
        dt = tl.load(dt_ptr + b * s_dtb + d * s_dtd + offs_l, mask=mask_l, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias
        if SOFTPLUS:
            small = tl.exp(tl.minimum(dt, 20.0))
            dt = tl.where(dt > 20.0, dt, tl.where(dt < -15.0, small, tl.log(1.0 + small)))
        dt = tl.where(mask_l, dt, 0.0)  # steps past the end leave the state as it is
        mask2 = mask_l[:, None] & mask_n[None, :]
        Bt = tl.load(B_ptr + b * s_Bb + offs_n[None, :] * s_Bn + offs_l[:, None], mask=mask2, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + b * s_Cb + offs_n[None, :] * s_Cn + offs_l[:, None], mask=mask2, other=0.0).to(tl.float32)
        a = tl.exp(dt[:, None] * A[None, :])
        x = (dt * u)[:, None] * Bt
        a_cum, x_cum = tl.associative_scan((a, x), 0, _first_order)
        hs = a_cum * h[None, :] + x_cum  # (BLOCK, BLOCK_N): the state after every step
        y = tl.sum(hs * Ct, axis=1)
        h = tl.sum(tl.where(last[:, None], hs, 0.0), axis=0)
        if HAS_D:
            y = y + Dd * u
        if HAS_Z:
            zz = tl.load(z_ptr + b * s_zb + d * s_zd + offs_l, mask=mask_l, other=0.0).to(tl.float32)
            y = y * zz * tl.sigmoid(zz)
        tl.store(out_ptr + b * s_ob + d * s_od + offs_l, y, mask=mask_l)
