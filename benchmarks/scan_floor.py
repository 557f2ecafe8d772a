"""The fused CPU scan kernel against the machine's vector throughput, on one thread.

Measured in one run, one thread, each figure the best of ``--rounds`` interleaved rounds of ``--repeats``:

1. the machine's float32 FMA rate: 8 independent chains of 8-lane fused multiply-adds held in registers
   (what one core can do at most, in lane-FMAs per ns);
2. the decay exp(dt * A), one value at a time over a buffer in L1, in three forms: the scalar libm
   ``exp`` in float64 (what numba calls without Intel's SVML: it does not vectorise), the degree-6
   polynomial the kernel uses, and a degree-5 one; each with its largest relative error against float64
   over the range the scan keeps (decays from 1 down to 1e-20);
3. the fused scan kernel itself (:func:`algnet_cli.ops.scan_fused.selective_scan_fused`) at the shapes
   of two models' scans, once with all their states and once with one: the difference is the cost
   of the state updates (decay, state, read-out), the rest is the per-token work (gathers, softplus,
   gate, output).

Printed: the kernel's updates per second and ns per update, and how far an update is from its floor,
the cheapest exact decay plus the two FMAs of the state and the read-out at the machine's FMA rate.

Run: python benchmarks/scan_floor.py [--rounds 3] [--repeats 3] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

#: the scans measured: name, channels (d_inner), states, tokens at 1280x720, dt rank (0: per channel)
SHAPES = (
    ("algnet-small, level 1", 32, 16, 1280 * 720, 1),
    ("GoPro-size, level 4", 512, 32, 160 * 90, 16),
)


def best_interleaved(fns: dict, rounds: int, repeats: int) -> dict:
    """The best time of each function, measured in ``rounds`` rounds that each run every function
    ``repeats`` times in turn: a drift in the machine's speed reaches all of them alike."""
    for fn in fns.values():
        fn()  # warm-up (and compile)
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def micro_kernels(k):
    """The FMA chains and the three decay loops, compiled here with the kernels' own flags."""
    from numba import njit

    jit = dict(nogil=True, fastmath=k._FLAGS, error_model="numpy", boundscheck=False)
    decay = k._decay
    negligible = k._LOG2_NEGLIGIBLE

    @njit(**jit)
    def fma_chains(reps, a, b, acc):
        for _ in range(reps):
            for j in range(64):  # 8 vectors of 8 lanes, independent chains, kept in registers
                acc[j] = acc[j] * a + b

    @njit(**jit)
    def decay_poly6(reps, x, out):
        for _ in range(reps):
            for i in range(x.size):
                out[i] = decay(x[i])

    c5 = _degree5()

    @njit(**jit)
    def decay_poly5(reps, x, out):
        for _ in range(reps):
            for i in range(x.size):
                v = x[i]
                kf = np.rint(min(v, np.float32(127.0)))
                f = v - kf
                p = c5[5] * f + c5[4]
                p = p * f + c5[3]
                p = p * f + c5[2]
                p = p * f + c5[1]
                p = p * f + c5[0]
                e = p * np.int32((np.int32(kf) + np.int32(127)) << np.int32(23)).view(np.float32)
                out[i] = e if v > negligible else np.float32(0.0)

    @njit(**jit)
    def decay_libm(reps, x, out):
        for _ in range(reps):
            for i in range(x.size):
                v = x[i]
                e = np.float32(math.exp(np.float64(v) * 0.6931471805599453))  # in float64: exact to float32
                out[i] = e if v > negligible else np.float32(0.0)

    return fma_chains, {"libm exp (scalar)": decay_libm, "degree-6 polynomial (used)": decay_poly6,
                        "degree-5 polynomial": decay_poly5}  # fmt: skip


def _degree5() -> np.ndarray:
    """2**f on [-1/2, 1/2]: a degree-5 Chebyshev fit, as float32 power-series coefficients."""
    f = np.cos(np.pi * (np.arange(512) + 0.5) / 512) / 2
    fit = np.polynomial.chebyshev.Chebyshev.fit(f, np.exp2(f), 5, domain=[-0.5, 0.5])
    return fit.convert(kind=np.polynomial.Polynomial).coef.astype(np.float32)


def decay_inputs(size: int = 4096) -> np.ndarray:
    """dt * A * log2(e) over the range whose decays the scan keeps (1 down to 1e-20), in L1."""
    return np.linspace(math.log2(1e-20) + 1e-3, 0.0, size, dtype=np.float32)


def max_rel_error(fn, x: np.ndarray) -> float:
    out = np.empty_like(x)
    fn(1, x, out)
    exact = np.exp2(x.astype(np.float64))
    return float(np.max(np.abs(out - exact) / exact))


def scan_inputs(d: int, n: int, length: int, rank: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = dict(
        u=torch.randn(1, d, length, generator=g),
        delta=torch.randn(1, rank or d, length, generator=g) * 0.5 - 1.0,
        A=-torch.exp(torch.rand(d, n, generator=g) * 3),
        B=torch.randn(1, n, length, generator=g),
        C=torch.randn(1, n, length, generator=g),
        D=torch.randn(d, generator=g),
        z=torch.randn(1, d, length, generator=g),
        delta_bias=torch.randn(d, generator=g) * 0.5,
    )
    if rank:
        x["delta_proj"] = torch.randn(d, rank, generator=g) / rank**0.5
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.25, help="tokens measured, as a share of the image's")
    ap.add_argument("--out", help="where to save the printed figures (default benchmarks/results/)")
    args = ap.parse_args()

    import torch

    from algnet_cli.ops.scan_fused import kernels, selective_scan_fused

    torch.set_num_threads(1)
    k = kernels()
    fma_chains, decays = micro_kernels(k)
    acc = np.ones(64, np.float32)
    x = decay_inputs()
    out = np.empty_like(x)
    fma_reps, reps = 2_000_000, 20_000
    values = {name: (reps // 10 if "libm" in name else reps) * x.size for name in decays}
    fns: dict = {"fma": lambda: fma_chains(fma_reps, np.float32(0.999), np.float32(1e-3), acc)}
    fns.update({name: (lambda fn=fn, name=name: fn(values[name] // x.size, x, out)) for name, fn in decays.items()})
    scans = []
    for name, d, n, tokens, rank in SHAPES:
        length = max(1024, int(tokens * args.scale))
        full = scan_inputs(d, n, length, rank)
        one = dict(full, A=full["A"][:, :1], B=full["B"][:, :1], C=full["C"][:, :1])
        scans.append((name, d, n, length))
        for label, inputs in (("all", full), ("one", one)):
            fns[(name, label)] = lambda inputs=inputs: selective_scan_fused(**inputs, delta_softplus=True)
    with torch.no_grad():
        t = best_interleaved(fns, args.rounds, args.repeats)

    with recorded("scan_floor", args.out):
        print(f"the fused CPU scan kernel against the machine, 1 thread, on {machine()}")
        print(f"  every figure the best of {args.rounds} rounds x {args.repeats}, the rounds interleaved")
        fma_per_ns = fma_reps * 64 / t["fma"] / 1e9
        print(f"machine: float32 FMA rate {2 * fma_per_ns:.1f} GFLOP/s per thread ({fma_per_ns:.1f} lane-FMAs per ns)")
        print("the decay exp(dt * A), one value (1 to 1e-20; below, exactly 0):")
        print(f"  {'form':<28} {'ns/value':>9} {'max rel. error':>15}")
        decay_ns = {name: t[name] / values[name] * 1e9 for name in decays}
        for name, fn in decays.items():
            print(f"  {name:<28} {decay_ns[name]:9.3f} {max_rel_error(fn, x):15.2e}")
        used = decay_ns["degree-6 polynomial (used)"]
        floor_ns = used + 2 / fma_per_ns
        print(f"  the degree-6 polynomial is {decay_ns['libm exp (scalar)'] / used:.1f}x as fast as libm; degree 5 is "
              f"{used / decay_ns['degree-5 polynomial']:.2f}x as fast as degree 6, with more than float32's 1e-7 error")  # fmt: skip
        print("the fused scan kernel, 1 thread (delta bias, softplus, D skip and silu gate on):")
        print(f"  {'scan':<24} {'tokens':>8} {'ch':>4} {'states':>6} {'ms':>8} {'ms, 1 state':>11}"
              f" {'ns/update':>9} {'per-token':>9} {'x floor':>7}")  # fmt: skip
        for name, d, n, length in scans:
            t_full, t_one = t[(name, "all")], t[(name, "one")]
            update_ns = (t_full - t_one) / (length * d * (n - 1)) * 1e9
            token_share = 1 - update_ns * length * d * n / 1e9 / t_full
            print(f"  {name:<24} {length:8d} {d:4d} {n:6d} {t_full * 1e3:8.1f} {t_one * 1e3:11.1f}"
                  f" {update_ns:9.3f} {token_share:9.0%} {update_ns / floor_ns:7.1f}")  # fmt: skip
            print(f"    {length * d * n / t_full / 1e9:.2f} G updates/s in all (per-token work included)")
        print(
            f"floor of one update: the decay ({used:.3f} ns) and 2 FMAs ({2 / fma_per_ns:.3f} ns) = {floor_ns:.3f} ns;"
        )
        print("  x floor: the kernel's ns per update over it. The decay alone costs as much as "
              f"{used * fma_per_ns:.0f} lane-FMAs")  # fmt: skip


if __name__ == "__main__":
    main()
