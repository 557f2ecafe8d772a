"""Whole-model forward on the CPU at 1280x720, per scan backend, side by side in one run.

- ``algnet-small``, the embedded default, loaded through ``load_model("default", scan=...)``;
- the GoPro-size configuration (width 32, encoder blocks 2/2/4/8, middle 8, decoder 8/4/2/2),
  seeded random weights (``--no-gopro`` skips it: it takes minutes with the chunked scan).

Each measurement runs in a fresh process: best of ``--repeats`` after a warm-up call, with the
fused kernels compiled (or loaded from the cache) before the timing.
Run: python benchmarks/model.py [--repeats 2] [--no-gopro]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure, mib, recorded  # noqa: E402

GOPRO = dict(width=32, middle_blk_num=8, enc_blk_nums=(2, 2, 4, 8), dec_blk_nums=(8, 4, 2, 2))


def setup(which: str, scan: str, h: int, w: int):
    import torch

    from algnet_cli import load_model
    from algnet_cli.model import ALGNet, ALGNetConfig
    from algnet_cli.ops import prepare

    torch.manual_seed(0)
    if which in ("default", "default-tlc"):
        net = load_model("default", scan=scan, tlc=which == "default-tlc")
    else:
        from algnet_cli.cpu import keep_freed_memory

        prepare(scan, "cpu")
        keep_freed_memory()  # as load_model does on the CPU
        net = ALGNet(ALGNetConfig(**GOPRO)).eval().set_scan_backend(None if scan == "auto" else scan)
    return net, torch.rand(1, 3, h, w)


def run(state):
    import torch

    net, x = state
    with torch.inference_mode():
        return net(x)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-gopro", action="store_true")
    args = ap.parse_args()
    import torch

    print(f"ALGNet forward, float32, 1280x720, on {machine()}, torch {torch.__version__}")
    models = [("default", "algnet-small (embedded)", args.repeats)]
    if not args.no_gopro:
        models.append(("gopro", "GoPro-size configuration", 1))
    for which, label, repeats in models:
        times = {}
        for scan in ("chunked", "auto"):
            t, mem = measure(functools.partial(setup, which, scan, 720, 1280), run, repeats)
            times[scan] = t
            print(f"  {label:<26} scan={scan:<8} {t:7.2f} s   peak {mib(mem)}")
        print(f"  {label:<26} auto (fused) vs chunked: {times['chunked'] / times['auto']:.2f}x faster")
    # as `algnet deblur` runs it, with the test-time local converter (what the model card quotes)
    t, mem = measure(functools.partial(setup, "default-tlc", "auto", 720, 1280), run, args.repeats)
    print(f"  {'algnet-small, TLC on':<26} scan=auto     {t:7.2f} s   peak {mib(mem)}")


if __name__ == "__main__":
    with recorded("model"):
        main()
