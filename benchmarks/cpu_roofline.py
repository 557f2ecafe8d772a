"""Where the CPU forward spends its time, against this machine's floor.

Measures, in one run:
- the machine: memory bandwidth (a large float32 copy: bytes read plus written, per second) and the
  sgemm rate (a 2048x2048 float32 matrix product, all threads);
- one forward of each model at ``--size`` (default 1280x720, fp32), profiled op by op: per op class
  (matrix products, convolutions, the selective scan and its causal conv1d, the block's fused glue
  kernels, norms, element-wise, copies),
  its time, the bytes it must move at least (each input read once, each output written once) and its
  FLOPs, the rates it achieves against the measured bandwidth and sgemm rate, and its floor: the larger
  of bytes / bandwidth and FLOPs / sgemm rate;
- the whole forward's time against the sum of the floors, unprofiled (the median of ``--repeats``).

The process keeps freed memory as ``algnet deblur`` does (``algnet_cli.cpu.keep_freed_memory``), so
the forward pays no page faults the command does not pay.

Run: python benchmarks/cpu_roofline.py [--size 1280x720] [--models algnet-small,gopro-size] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

F32 = 4
#: op class of each profiled aten op (others: "other")
CLASSES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
    "conv": ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::_convolution", "aten::convolution",
             "aten::conv2d"),
    "norm": ("aten::native_layer_norm", "aten::native_group_norm", "aten::native_batch_norm"),
    "element-wise": (
        "aten::add", "aten::add_", "aten::addcmul", "aten::addcmul_", "aten::mul", "aten::mul_", "aten::sub", "aten::div", "aten::sigmoid",
        "aten::silu", "aten::gelu", "aten::exp", "aten::softplus", "aten::mean", "aten::sum", "aten::clamp",
        "aten::neg", "aten::relu", "aten::pixel_shuffle", "aten::upsample_bilinear2d", "aten::tanh",
    ),
    "copy": ("aten::copy_", "aten::cat", "aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy",
             "aten::constant_pad_nd", "aten::reflection_pad2d"),
}  # fmt: skip
#: outer ops whose inner ops are counted instead (their time is their children's)
COMPOSITE = ("aten::linear", "aten::conv2d", "aten::convolution", "aten::_convolution", "aten::matmul",
             "aten::instance_norm", "aten::batch_norm", "aten::contiguous", "aten::to")  # fmt: skip


def bandwidth() -> float:
    """Bytes per second of a 256 MiB float32 copy (read and write), best of 5."""
    import torch

    src = torch.rand(64 * 2**20)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * F32 / best


def sgemm_rate() -> float:
    """FLOP per second of a 2048x2048 float32 product, best of 5."""
    import torch

    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    a @ b
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


def _numel(shape) -> int:
    return math.prod(shape) if shape else 1


def cost(name: str, shapes: list, args: list | None = None) -> tuple[float, float]:
    """(bytes, FLOPs) an op must move and do at least, from its input shapes (and, for a convolution,
    its stride among its other arguments). Ops of no known class move nothing here (views, allocations)."""
    if classify(name) == "other":
        return 0.0, 0.0
    shapes = [s for s in shapes if isinstance(s, (list, tuple)) and s and all(isinstance(d, int) for d in s)]
    if not shapes:
        return 0.0, 0.0
    if name in ("aten::mm", "aten::bmm", "aten::addmm"):
        a, b = (shapes[-2], shapes[-1]) if name == "aten::addmm" else (shapes[0], shapes[1])
        batch = a[0] if name == "aten::bmm" else 1
        m, k, n = a[-2], a[-1], b[-1]
        return F32 * batch * (m * k + k * n + m * n), 2.0 * batch * m * n * k
    if name in ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward") and len(shapes) >= 2:
        x, w = shapes[0], shapes[1]  # (n, cin, h, w), (cout, cin/groups, kh, kw)
        stride = args[4] if args and len(args) > 4 and isinstance(args[4], (list, tuple)) and args[4] else [1, 1]
        out = x[0] * w[0] * _numel(x[2:]) // max(1, _numel(stride))
        return F32 * (_numel(x) + _numel(w) + out), 2.0 * out * _numel(w[1:])
    largest = max(_numel(s) for s in shapes)
    moved = sum(_numel(s) for s in shapes) + largest  # inputs read, an output the size of the largest
    return F32 * moved, float(largest)


#: FLOPs per output element of the block's glue (algnet_cli.ops.glue): the channel norms, the local
#: converter's box mean, the gated depthwise 3x3 convolution (two 9-tap sums and their product)
GLUE_FLOPS = {"layer_norm_2d": 8.0, "token_norm": 8.0, "local_mean": 4.0, "depthwise3x3_gate": 37.0}


def classify(name: str) -> str:
    for cls, names in CLASSES.items():
        if name in names:
            return cls
    return "other"


def profile_forward(model, x) -> dict:
    """Per op class: [seconds, bytes, FLOPs] of one forward (the scan kernels timed by their wrappers)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from algnet_cli.model import mamba

    scan, conv1d = mamba.selective_scan, mamba.causal_conv1d_silu
    scan_cost = [0.0, 0.0]

    def timed_scan(u, delta, A, B, C, D=None, z=None, **kw):
        b, d, length = u.shape
        n = A.shape[1]
        # u, delta, z read, B and C read, y written; per (token, channel, state): exp, 2 mul-adds, a mul-add out
        scan_cost[0] += F32 * (4 * b * d * length + 2 * b * n * length)
        scan_cost[1] += 7.0 * b * d * n * length
        with record_function("algnet::selective_scan"):
            return scan(u, delta, A, B, C, D, z, **kw)

    conv_cost = [0.0, 0.0]

    def timed_conv1d(x, weight, bias, backend=None):
        conv_cost[0] += F32 * 2 * x.numel()
        conv_cost[1] += 2.0 * x.numel() * weight.shape[-1]
        with record_function("algnet::causal_conv1d_silu"):
            return conv1d(x, weight, bias, backend=backend)

    from algnet_cli.model import blocks

    glue = {name: getattr(blocks, name) for name in GLUE_FLOPS}
    glue_cost = [0.0, 0.0]

    def timed_glue(name):
        def run(x, *args, **kw):
            with record_function("algnet::glue"):
                out = glue[name](x, *args, **kw)
            glue_cost[0] += F32 * (x.numel() + out.numel())
            glue_cost[1] += GLUE_FLOPS[name] * out.numel()
            return out

        return run

    mamba.selective_scan, mamba.causal_conv1d_silu = timed_scan, timed_conv1d
    for name in glue:
        setattr(blocks, name, timed_glue(name))
    try:
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model(x)
    finally:
        mamba.selective_scan, mamba.causal_conv1d_silu = scan, conv1d
        for name, fn in glue.items():
            setattr(blocks, name, fn)
    table: dict = defaultdict(lambda: [0.0, 0.0, 0.0])
    others: dict = defaultdict(float)
    for ev in prof.events():
        name = ev.name
        if name == "algnet::selective_scan":
            table["selective scan"][0] += ev.cpu_time_total / 1e6
            continue
        if name == "algnet::causal_conv1d_silu":
            table["causal conv1d"][0] += ev.cpu_time_total / 1e6
            continue
        if name == "algnet::glue":
            table["block glue"][0] += ev.cpu_time_total / 1e6
            continue
        if not name.startswith("aten::") or name in COMPOSITE or _inside_kernel(ev):
            continue
        cls = classify(name)
        nbytes, flops = cost(name, list(ev.input_shapes or []), list(getattr(ev, "concrete_inputs", None) or []))
        if cls == "other":
            others[name] += ev.self_cpu_time_total / 1e6
        row = table[cls]
        row[0] += ev.self_cpu_time_total / 1e6
        row[1] += nbytes
        row[2] += flops
    table["selective scan"][1:] = scan_cost
    table["causal conv1d"][1:] = conv_cost
    if glue_cost[0]:
        table["block glue"][1:] = glue_cost
    top = sorted(others.items(), key=lambda kv: -kv[1])[:4]
    table["other"].append(", ".join(f"{k.removeprefix('aten::')} {v:.3f} s" for k, v in top))
    return dict(table)


def _inside_kernel(ev) -> bool:
    """An aten op called by the scan wrappers (the kernels' own copies): counted with the scan."""
    parent = ev.cpu_parent
    while parent is not None:
        if parent.name.startswith("algnet::"):
            return True
        parent = parent.cpu_parent
    return False


def forward_seconds(model, x, repeats: int) -> float:
    import torch

    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def build(name: str):
    import torch

    from algnet_cli.model import ALGNet
    from algnet_cli.model.config import NAFNET_STYLE

    if name == "gopro-size":  # the official code's earlier, NAFNet-style default (width 32, 28 blocks at the
        # lowest level, 37.7 M values); benchmarks/cpu_speedup.py's GoPro-size is the final default (54.6 M)
        torch.manual_seed(0)
        return ALGNet(NAFNET_STYLE).eval()
    from algnet_cli.api import Deblurrer

    return Deblurrer(name, device="cpu").model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--models", default="algnet-small,gopro-size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/cpu_roofline_MACHINE.txt)")
    args = ap.parse_args()
    import torch

    from algnet_cli.cpu import keep_freed_memory

    keep_freed_memory()  # as `algnet deblur` does
    w, h = (int(v) for v in args.size.lower().split("x"))
    with recorded("cpu_roofline", args.out):
        bw, peak = bandwidth(), sgemm_rate()
        print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"measured: memory bandwidth {bw / 1e9:.1f} GB/s (float32 copy), sgemm {peak / 1e9:.1f} GFLOP/s")
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        for name in args.models.split(","):
            model = build(name)
            print(f"\n{name} at {w}x{h}, fp32")
            table = profile_forward(model, x)
            whole = forward_seconds(model, x, args.repeats)
            print(f"{'op class':16s} {'time s':>8s} {'share':>6s} {'GB':>8s} {'GFLOP':>8s} {'GB/s':>7s} "
                  f"{'GFLOP/s':>8s} {'floor s':>8s} {'x floor':>8s}")  # fmt: skip
            profiled = sum(r[0] for r in table.values())
            floors = 0.0
            for cls, (secs, nbytes, flops, *_) in sorted(table.items(), key=lambda kv: -kv[1][0]):
                floor = max(nbytes / bw, flops / peak)
                floors += floor
                ratio = f"{secs / floor:8.1f}" if floor > 0 else f"{'-':>8s}"
                gbs = nbytes / secs / 1e9 if secs else 0.0
                gfs = flops / secs / 1e9 if secs else 0.0
                print(f"{cls:16s} {secs:8.3f} {secs / profiled:6.1%} {nbytes / 1e9:8.2f} {flops / 1e9:8.2f} "
                      f"{gbs:7.1f} {gfs:8.1f} {floor:8.3f} {ratio}")  # fmt: skip
            if len(table.get("other", [])) > 3:
                print(f"  other (not counted in the floor): {table['other'][3]}")
            print(f"whole forward, unprofiled: {whole:.3f} s; sum of floors {floors:.3f} s: "
                  f"{whole / floors:.1f}x the floor" if floors else f"whole forward {whole:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
