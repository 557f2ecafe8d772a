"""The fused CPU selective-scan kernels, compiled by numba (LLVM, no C compiler needed).

Imported only by :mod:`.scan_fused`, after numba's cache folder has been set: the kernels are
compiled eagerly, for one signature each, when this module is first imported.

A task is one (batch, group of ``LANES`` channels). Channels sit in the vector lanes, so the
read-out ``y = <C, h>`` needs no horizontal sum. Each task walks the sequence in tiles of
``TILE`` steps: the tile's inputs are gathered into small contiguous buffers, the elementwise
parts (bias, softplus, the 1e-20 cut, the D skip, the silu gate) run vectorised over the tile,
and the recurrence runs step by step with (state x lanes) independent chains.

Sequence inputs are read where they lie. Each comes as a C-contiguous float32 array ``X``, a
channel offset ``off`` and a flag ``cf``: element (batch b, step t, channel c) is
``X[b, off + c, t]`` when ``cf`` (channels first, (batch, channels, length)) and
``X[b, t, off + c]`` otherwise (channels last, (batch, length, width)): a column slice of a
projection's (B, L, width) output needs no copy.
"""

from __future__ import annotations

import numpy as np
from numba import float32, int64, njit, types, void

from ._numba_math import _FLAGS, _JIT, _LN2, _LOG2_NEGLIGIBLE, LOG2E, NEGLIGIBLE, _decay, _exp, _log1p_small, _sigmoid  # noqa: F401

LANES = 16
TILE = 256

_X = float32[:, :, ::1]  # a sequence input (see the module docstring)
_S = float32[:, ::1]  # a task's scratch buffer
_T = float32[:, :, ::1]  # a task's (rows, TILE, LANES) tile buffer, or its states
_V = float32[::1]
_F4 = float32[:, :, :, ::1]
_F2 = float32[:, :]
_F1 = float32[:]

#: the five sequence inputs u, delta, z, B, C, each as (array, offset, cf): see the module docstring
_SEQS = types.Tuple((_X, int64, int64) * 5)

#: rows of a task's (rows, TILE, LANES) tile buffer
_U, _DT, _DU, _Z, _GATE, _SIG, _Y = range(7)
_ROWS = 7


@njit(void(_X, int64, int64, int64, int64, int64, int64, int64, _S), inline="always", **_JIT)
def _gather(X, off, cf, bi, t0, tl, c0, w, dst):
    """dst[t, j] = element (bi, t0 + t, c0 + j) of a sequence input for j < w, 0 in the lanes past it."""
    for t in range(tl):
        for j in range(w, LANES):
            dst[t, j] = np.float32(0.0)
    if cf:
        for j in range(w):
            for t in range(tl):
                dst[t, j] = X[bi, off + c0 + j, t0 + t]
    elif w == LANES:  # a whole group: one vector per step
        for t in range(tl):
            for j in range(LANES):
                dst[t, j] = X[bi, t0 + t, off + c0 + j]
    else:
        for t in range(tl):
            for j in range(w):
                dst[t, j] = X[bi, t0 + t, off + c0 + j]


@njit(void(_T, int64, int64, int64, int64), inline="always", **_JIT)
def _step_sizes(tile, tl, softplus, has_z, derivative):
    """Over one tile's buffer: delta + bias -> dt (softplus or not; 0 below 1e-20), with ``derivative``
    its derivative (0 where dt was cut; only the backward reads it), dt * u, and silu(z) (1 without z)."""
    dts, sig, dus, us, zs, gates = tile[_DT], tile[_SIG], tile[_DU], tile[_U], tile[_Z], tile[_GATE]
    for t in range(tl):
        for j in range(LANES):
            x = dts[t, j]
            if softplus:
                e = _exp(-abs(x))
                dt = max(x, np.float32(0.0)) + _log1p_small(e)
            else:
                dt = x
            keep = dt > np.float32(NEGLIGIBLE)
            if derivative:
                g = np.float32(1.0)
                if softplus:
                    g = np.float32(1.0) / (np.float32(1.0) + e)
                    g = g if x >= np.float32(0.0) else e * g
                sig[t, j] = g if keep else np.float32(0.0)
            dt = dt if keep else np.float32(0.0)
            dts[t, j] = dt
            dus[t, j] = dt * us[t, j]
            zz = zs[t, j]
            gates[t, j] = zz * _sigmoid(zz) if has_z else np.float32(1.0)


@njit(void(_X, int64, int64, int64, int64, int64, int64, _S), inline="always", **_JIT)
def _load_rows(X, off, cf, bi, t0, tl, n, dst):
    """dst[t, s] = B or C at (bi, t0 + t, s): one tile as contiguous rows."""
    if cf:
        for s in range(n):
            for t in range(tl):
                dst[t, s] = X[bi, off + s, t0 + t]
    else:
        for t in range(tl):
            for s in range(n):
                dst[t, s] = X[bi, t0 + t, off + s]


@njit(void(_X, int64, int64, int64, int64, int64, _S, _S), inline="always", **_JIT)
def _project(X, off, cf, bi, t0, tl, Wl, dst):
    """dst[t, j] = sum_k X(bi, t0 + t, k) Wl[k, j]: the step sizes from their low-rank projection
    (mamba's dt_proj without its bias), rank Wl.shape[0]."""
    rank = Wl.shape[0]
    for t in range(tl):
        for j in range(LANES):
            dst[t, j] = np.float32(0.0)
        for k in range(rank):
            v = X[bi, off + k, t0 + t] if cf else X[bi, t0 + t, off + k]
            for j in range(LANES):
                dst[t, j] += v * Wl[k, j]


@njit(void(_SEQS, int64, int64, int64, int64, int64, _V, _S, int64, int64, int64, _T), inline="always", **_JIT)
def _load_tile(seqs, bi, c0, w, t0, tl, biasl, Wl, softplus, has_z, derivative, tile):
    """Gather one tile of every input into the task's buffers.

    tile rows (steps, lanes): u; dt = softplus(delta + bias) (or delta + bias), 0 below 1e-20;
    dt * u; z; silu(z) (1 without z); with ``derivative``, d dt / d delta (0 where dt was cut). Lanes past the last
    channel hold zeros (u = 0 keeps their state at zero). With a (rank, lanes) Wl of rank > 0, the
    delta input holds the rank columns that Wl projects to the lanes' delta.
    """
    u, u_off, u_cf, delta, d_off, d_cf, z, z_off, z_cf, B, b_off, b_cf, C, c_off, c_cf = seqs
    _gather(u, u_off, u_cf, bi, t0, tl, c0, w, tile[_U])
    if Wl.shape[0]:
        _project(delta, d_off, d_cf, bi, t0, tl, Wl, tile[_DT])
    else:
        _gather(delta, d_off, d_cf, bi, t0, tl, c0, w, tile[_DT])
    if has_z:
        _gather(z, z_off, z_cf, bi, t0, tl, c0, w, tile[_Z])
    dts = tile[_DT]
    for t in range(tl):
        for j in range(LANES):
            dts[t, j] += biasl[j]
    _step_sizes(tile, tl, softplus, has_z, derivative)


@njit(void(_SEQS, int64, int64, int64, _T, _S, _T), inline="always", **_JIT)
def _tile_states(seqs, bi, t0, tl, tile, At2, hs):
    """Run the recurrence through one tile: hs[0] (state, lanes) enters it, hs[t + 1] follows step t,
    and tile row _Y gets <C_t, h_t> per lane. At2: A * log2(e), laid out (state, lanes). B and C are
    read where they lie (one scalar per step and state), not copied."""
    B, b_off, b_cf, C, c_off, c_cf = seqs[9], seqs[10], seqs[11], seqs[12], seqs[13], seqs[14]
    n = At2.shape[0]
    dts = tile[_DT]
    dus = tile[_DU]
    ys = tile[_Y]
    for t in range(tl):
        for j in range(LANES):
            ys[t, j] = np.float32(0.0)
        for s in range(n):
            bs = B[bi, b_off + s, t0 + t] if b_cf else B[bi, t0 + t, b_off + s]
            cs = C[bi, c_off + s, t0 + t] if c_cf else C[bi, t0 + t, c_off + s]
            for j in range(LANES):
                hv = _decay(dts[t, j] * At2[s, j]) * hs[t, s, j] + dus[t, j] * bs
                hs[t + 1, s, j] = hv
                ys[t, j] += cs * hv


@njit(void(_F2, _F1, _F1, int64, int64, _S, _V, _V), inline="always", **_JIT)
def _task_constants(A, D, bias, c0, w, At2, Dl, biasl):
    """A * log2(e) as (state, lanes), D and the delta bias as (lanes,) for the channels c0 .. c0 + w - 1
    (0 past them)."""
    At2[:, :] = np.float32(0.0)
    Dl[:] = np.float32(0.0)
    biasl[:] = np.float32(0.0)
    for j in range(w):
        Dl[j] = D[c0 + j]
        biasl[j] = bias[c0 + j]
        for s in range(A.shape[1]):
            At2[s, j] = A[c0 + j, s] * LOG2E


@njit(void(int64, int64, _SEQS, _F2, _F1, _F1, _F2, int64, int64, _X, _F4, int64), **_JIT)
def scan_forward(lo, hi, seqs, A, D, bias, dt_proj, softplus, has_z, y, states, store):
    """Tasks lo..hi-1 of the forward scan.

    seqs: u, delta, z, B, C as in the module docstring; A: (dim, state); D, bias: (dim,). dt_proj:
    (dim, rank), rank 0 when delta is given per channel; else delta holds rank columns, projected
    by dt_proj in the kernel. y (batch, length, dim) gets (<C, h> + D u) * silu(z). With ``store``,
    states[b, k] (dim, state) receives the state entering tile k, for the backward.
    """
    d, n = A.shape
    length = y.shape[1]
    groups = (d + LANES - 1) // LANES
    tile = np.zeros((_ROWS, TILE, LANES), np.float32)
    At2 = np.zeros((n, LANES), np.float32)
    Dl = np.zeros(LANES, np.float32)
    biasl = np.zeros(LANES, np.float32)
    hs = np.zeros((TILE + 1, n, LANES), np.float32)
    Wl = np.zeros((dt_proj.shape[1], LANES), np.float32)
    us, gates, ys = tile[_U], tile[_GATE], tile[_Y]
    for task in range(lo, hi):
        bi = task // groups
        c0 = (task % groups) * LANES
        w = min(LANES, d - c0)
        _task_constants(A, D, bias, c0, w, At2, Dl, biasl)
        Wl[:, :] = np.float32(0.0)
        for j in range(w):
            for k in range(dt_proj.shape[1]):
                Wl[k, j] = dt_proj[c0 + j, k]
        hs[0, :, :] = np.float32(0.0)
        for t0 in range(0, length, TILE):
            tl = min(TILE, length - t0)
            if store:
                for j in range(w):
                    for s in range(n):
                        states[bi, t0 // TILE, c0 + j, s] = hs[0, s, j]
            _load_tile(seqs, bi, c0, w, t0, tl, biasl, Wl, softplus, has_z, 0, tile)
            _tile_states(seqs, bi, t0, tl, tile, At2, hs)
            hs[0, :, :] = hs[tl]
            for t in range(tl):
                for j in range(LANES):
                    ys[t, j] = (ys[t, j] + Dl[j] * us[t, j]) * gates[t, j]
                if w == LANES:
                    for j in range(LANES):
                        y[bi, t0 + t, c0 + j] = ys[t, j]
                else:
                    for j in range(w):
                        y[bi, t0 + t, c0 + j] = ys[t, j]


@njit(
    void(int64, int64, _SEQS, _F2, _F1, _F1, int64, int64, _F4, _X, _X, _X, _X, _F4, _F4, _X, _S, _S),
    **_JIT,
)
def scan_backward(lo, hi, seqs, A, D, bias, softplus, has_z, states, gout, gu, gdelta, gz, gB, gC, gA, gD, gbias):
    """Tasks lo..hi-1 of the backward scan, tile by tile from the last.

    Inputs as :func:`scan_forward`, plus states from its ``store`` run and gout (batch, length,
    dim), the gradient of y. Each tile's states are recomputed from the saved state entering it;
    the adjoint lam_t = gy_t C_t + a_{t+1} lam_{t+1} runs backwards across tiles. Writes, per
    element, gu, gdelta (through softplus and the cut) and gz (batch, length, dim); and partial
    sums that no other task touches: gB, gC (batch, group, length, state), gA (batch, dim, state),
    gD and gbias (batch, dim). The caller adds the partials up.
    """
    d, n = A.shape
    length = gout.shape[1]
    groups = (d + LANES - 1) // LANES
    tile = np.zeros((_ROWS, TILE, LANES), np.float32)
    Bt = np.empty((TILE, n), np.float32)
    Ct = np.empty((TILE, n), np.float32)
    At2 = np.zeros((n, LANES), np.float32)
    Dl = np.zeros(LANES, np.float32)
    biasl = np.zeros(LANES, np.float32)
    hs = np.zeros((TILE + 1, n, LANES), np.float32)
    gzs = np.zeros((TILE, LANES), np.float32)
    lam = np.empty((n, LANES), np.float32)  # a_{t+1} * lam_{t+1}, carried backwards
    gAl = np.empty((n, LANES), np.float32)
    gul = np.empty(LANES, np.float32)
    gdtl = np.empty(LANES, np.float32)
    gDl = np.empty(LANES, np.float32)
    gbl = np.empty(LANES, np.float32)
    no_proj = np.zeros((0, LANES), np.float32)  # the backward takes delta per channel
    us, dts, zs, gates, sig, gys = tile[_U], tile[_DT], tile[_Z], tile[_GATE], tile[_SIG], tile[_Y]
    for task in range(lo, hi):
        bi = task // groups
        g = task % groups
        c0 = g * LANES
        w = min(LANES, d - c0)
        _task_constants(A, D, bias, c0, w, At2, Dl, biasl)
        lam[:, :] = np.float32(0.0)
        gAl[:, :] = np.float32(0.0)
        gDl[:] = np.float32(0.0)
        gbl[:] = np.float32(0.0)
        last = (length - 1) // TILE * TILE
        for t0 in range(last, -1, -TILE):
            tl = min(TILE, length - t0)
            _load_tile(seqs, bi, c0, w, t0, tl, biasl, no_proj, softplus, has_z, 1, tile)
            _load_rows(seqs[9], seqs[10], seqs[11], bi, t0, tl, n, Bt)
            _load_rows(seqs[12], seqs[13], seqs[14], bi, t0, tl, n, Ct)
            for j in range(w):
                for s in range(n):
                    hs[0, s, j] = states[bi, t0 // TILE, c0 + j, s]
            _tile_states(seqs, bi, t0, tl, tile, At2, hs)
            # through the gate: gys, <C, h>, becomes the gradient of y before the gate; gzs that of z
            for t in range(tl):
                for j in range(w):
                    go = gout[bi, t0 + t, c0 + j]
                    zz = zs[t, j]
                    sz = _sigmoid(zz)
                    y_pre = gys[t, j] + Dl[j] * us[t, j]
                    gzs[t, j] = go * y_pre * sz * (np.float32(1.0) + zz * (np.float32(1.0) - sz))
                    gys[t, j] = go * gates[t, j]
            for t in range(tl - 1, -1, -1):
                for j in range(LANES):
                    gul[j] = gys[t, j] * Dl[j]
                    gdtl[j] = np.float32(0.0)
                    gDl[j] += gys[t, j] * us[t, j]
                for s in range(n):
                    bs = Bt[t, s]
                    cs = Ct[t, s]
                    sum_b = np.float32(0.0)
                    sum_c = np.float32(0.0)
                    for j in range(LANES):
                        lt = gys[t, j] * cs + lam[s, j]
                        a = _decay(dts[t, j] * At2[s, j])
                        gexp = lt * hs[t, s, j] * a  # gradient of dt * A
                        gAl[s, j] += gexp * dts[t, j]
                        gdtl[j] += gexp * At2[s, j] * _LN2 + lt * bs * us[t, j]
                        gul[j] += lt * bs * dts[t, j]
                        sum_b += lt * dts[t, j] * us[t, j]
                        sum_c += gys[t, j] * hs[t + 1, s, j]
                        lam[s, j] = a * lt
                    gB[bi, g, t0 + t, s] = sum_b
                    gC[bi, g, t0 + t, s] = sum_c
                for j in range(w):
                    gdt = gdtl[j] * sig[t, j]
                    gbl[j] += gdt
                    gu[bi, t0 + t, c0 + j] = gul[j]
                    gdelta[bi, t0 + t, c0 + j] = gdt
                    gz[bi, t0 + t, c0 + j] = gzs[t, j]
        for j in range(w):
            gD[bi, c0 + j] = gDl[j]
            gbias[bi, c0 + j] = gbl[j]
            for s in range(n):
                gA[bi, c0 + j, s] = gAl[s, j]


@njit(void(int64, int64, int64, _X, int64, float32[:, ::1], _V, _X), **_JIT)
def causal_conv1d_silu(lo, hi, steps, x, off, weight, bias, out):
    """Tasks lo..hi-1 of silu(depthwise causal conv1d), channels last; a task is ``steps`` steps of one batch.

    x: (batch, length, width) with the channels at off .. off + dim - 1; weight: (dim, k); bias:
    (dim,); out: (batch, length, dim) gets silu(bias + sum_i weight[:, i] * x[t - k + 1 + i]), the
    steps before the start counting as zeros (mamba-ssm's conv1d with padding k - 1, cut to length).
    """
    nb, length, d = out.shape
    k = weight.shape[1]
    chunks = (length + steps - 1) // steps
    wt = np.empty((k, d), np.float32)
    for c in range(d):
        for i in range(k):
            wt[i, c] = weight[c, i]
    for task in range(lo, hi):
        bi = task // chunks
        start = (task % chunks) * steps
        stop = min(start + steps, length)
        fast = max(start, k - 1) if k == 4 else stop  # from here on, mamba's width with every tap inside
        for t in range(start, min(fast, stop)):
            for c in range(d):
                a = bias[c]
                for i in range(max(0, k - 1 - t), k):
                    a += wt[i, c] * x[bi, t - k + 1 + i, off + c]
                out[bi, t, c] = a / (np.float32(1.0) + _exp(-a))
        for t in range(fast, stop):
            # the four input rows and the output row as unit-stride views: the channel loop vectorises
            # (4.7x faster than indexing the 3-d arrays in the loop, measured; the same results)
            r0, r1 = x[bi, t - 3, off : off + d], x[bi, t - 2, off : off + d]
            r2, r3 = x[bi, t - 1, off : off + d], x[bi, t, off : off + d]
            o = out[bi, t]
            for c in range(d):
                a = bias[c] + wt[0, c] * r0[c] + wt[1, c] * r1[c]
                a += wt[2, c] * r2[c] + wt[3, c] * r3[c]
                o[c] = a / (np.float32(1.0) + _exp(-a))


# the block's glue kernels, compiled with these and cached beside them
from ._numba_glue import aggregate, box_mean, depthwise3x3_gate, gated_ffn, layer_norm_channels  # noqa: E402, F401
