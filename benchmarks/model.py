"""ALGNet forward on the CPU: time and peak memory.

Prints the default (official) configuration on a 256x256 input, and a compact configuration
(width 16, one block per stage) on a 1280x720 input, each in a fresh process.
Run: python benchmarks/model.py
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure  # noqa: E402

COMPACT = dict(width=16, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))


def setup(config: dict, h: int, w: int, tlc: bool):
    import torch

    from algnet_cli.model import ALGNet, ALGNetConfig

    torch.manual_seed(0)
    net = ALGNet(ALGNetConfig(**config)).eval()
    if tlc:
        net.set_tlc(256)
    return net, torch.rand(1, 3, h, w)


def run(state):
    import torch

    net, x = state
    with torch.inference_mode():
        return net(x)[-1]


def main() -> None:
    print(f"ALGNet forward, float32, chunked scan, on {machine()}")
    for label, config, (h, w), repeats in (
        ("default (official) config", {}, (256, 256), 2),
        ("compact config (width 16, 1 block/stage)", COMPACT, (720, 1280), 2),
    ):
        for tlc in (False, True):
            t, mem = measure(functools.partial(setup, config, h, w, tlc), run, repeats)
            print(f"  {label:<42} {w}x{h} tlc={'on ' if tlc else 'off'}  {t:7.2f} s   peak {mem:8.1f} MiB")


if __name__ == "__main__":
    main()
