"""Whole image or tiles on the CPU: which is faster, at which size.

For each size in ``--sizes``, the runner restores one image whole and in tiles of each side in
``--tiles`` (overlap 32, as `algnet deblur --tile N` cuts them), each in a fresh process with the
command's allocator setting, the configurations alternated over ``--rounds`` rounds (this VM's speed
drifts), best time kept. Printed per configuration: time, its ratio to the whole image's (above 1:
faster than the whole image), peak memory, and, at sizes up to ``--compare-max`` pixels, the largest and
the mean difference from the whole image's output (tiles see the test-time local converter's windows
cut at their borders, so they are not the same computation).

Run: python benchmarks/cpu_tiles.py [--model algnet-small] [--sizes 1280x720,2560x1440] [--tiles 1024,768,512,384]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure, recorded  # noqa: E402


def image(h: int, w: int):
    """A seeded test card with edges at every scale (random blocks of several sizes, summed)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(h * 7919 + w)
    out = torch.zeros(1, 3, h, w)
    for cell in (4, 16, 64):
        coarse = torch.rand(1, 3, -(-h // cell), -(-w // cell), generator=g)
        out += F.interpolate(coarse, scale_factor=cell, mode="nearest")[..., :h, :w] / 3
    return out


def runner(model: str, tile: int):
    from algnet_cli.api import Deblurrer
    from algnet_cli.runner import Runner, RunOptions

    return Runner(Deblurrer(model, device="cpu").model, RunOptions(device="cpu", precision="fp32", tile=tile))


def _setup(model: str, tile: int, h: int, w: int):
    from algnet_cli.cpu import keep_freed_memory

    keep_freed_memory()  # as `algnet deblur` sets it
    return runner(model, tile), image(h, w)


def _run(state):
    run, x = state
    run.restore(x)


def label(tile: int) -> str:
    return "whole" if tile == 0 else f"tiles {tile}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="algnet-small")
    ap.add_argument("--sizes", default="1280x720,2560x1440")
    ap.add_argument("--tiles", default="1024,768,512,384")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compare-max", type=int, default=1280 * 720, help="largest size (pixels) to compare outputs at")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/cpu_tiles_MACHINE.txt)")
    args = ap.parse_args()

    with recorded("cpu_tiles", args.out):
        print(f"{args.model}, fp32, overlap 32, best of {args.rounds} alternated rounds, each in a fresh process")
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            tiles = [0] + [t for t in (int(v) for v in args.tiles.split(",")) if t < max(h, w)]
            best: dict[int, list[float]] = {t: [float("inf"), 0.0] for t in tiles}
            for _ in range(args.rounds):
                for t in tiles:
                    secs, peak = measure(functools.partial(_setup, args.model, t, h, w), _run, repeats=1)
                    best[t] = [min(best[t][0], secs), max(best[t][1], peak)]
            outputs = {}
            if h * w <= args.compare_max:
                x = image(h, w)
                outputs = {t: runner(args.model, t).restore(x) for t in tiles}
            print(f"\n{w}x{h}")
            print(
                f"{'configuration':<14}{'time s':>9}{'vs whole':>10}{'peak MiB':>10}{'max diff':>10}{'mean diff':>11}"
            )
            for t in tiles:
                secs, peak = best[t]
                diff = ""
                if outputs:
                    d = (outputs[t] - outputs[0]).abs()
                    diff = f"{float(d.max()):>10.4f}{float(d.mean()):>11.5f}"
                print(f"{label(t):<14}{secs:>9.2f}{best[0][0] / secs:>9.2f}x{peak:>10.0f}{diff}")
            fastest = min(tiles, key=lambda t: best[t][0])
            print(f"fastest: {label(fastest)}")


if __name__ == "__main__":
    main()
