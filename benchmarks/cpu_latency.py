"""What a CPU user waits for: `algnet deblur` end to end, the first image against the rest, fp32 against bf16.

Writes 1280x720 photos (crops of ``--photo``, tiled when smaller, each shifted) into a temporary folder,
then runs the real command line, side by side in one run:
- with the first forward's memory faulted in during start-up (the default) and without
  (``ALGNET_PREFAULT=0``), alternated, the median of ``--repeats`` runs each: one photo end to end
  (interpreter start, imports, model load, decode, model, encode, record) above the steady per-image
  time, and the first image's model time (from the run record) against the median of the others in
  a folder of 4;
- bf16 against fp32: per-image PSNR of the outputs, and the steady time ratio.

Run: python benchmarks/cpu_latency.py [--photo FILE] [--model default]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photos(src: Path, folder: Path, n: int, h: int = 720, w: int = 1280) -> None:
    from algnet_cli.images import read_image, write_image

    img = read_image(src)[..., :3]
    img = np.tile(img, (-(-h // img.shape[0]), -(-w // img.shape[1]), 1))
    folder.mkdir(parents=True)
    for i in range(n):
        write_image(folder / f"p{i}.png", np.ascontiguousarray(np.roll(img, 53 * i, axis=1)[:h, :w]))


def deblur(inputs: Path, out: Path, precision: str, model: str, prefault: bool = True) -> tuple[float, list[float]]:
    """Wall seconds of the command, and the model seconds of each image from its record."""
    cmd = [sys.executable, "-m", "algnet_cli", "deblur", str(inputs), "-o", f"{out}/", "-q"]
    cmd += ["--precision", precision, "--model", model]
    env = {**os.environ, "ALGNET_PREFAULT": "1" if prefault else "0"}
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t
    record = json.loads((out / "algnet-run.json").read_text())
    return wall, [f["seconds"] for f in record["files"]]


def psnr(a: Path, b: Path) -> float:
    from algnet_cli.images import read_image

    x, y = read_image(a).astype(np.float64), read_image(b).astype(np.float64)
    mse = float(np.mean((x - y) ** 2)) / 255.0**2
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=ROOT / "examples" / "blurred" / "text_defocus.jpg")
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the one-photo command, each way")
    ap.add_argument(
        "--gopro", action="store_true", help="also fp32 against bf16 in-process, embedded and GoPro-size (minutes)"
    )
    ap.add_argument("--gopro-weights", default=None, help="a trained GoPro-size checkpoint (else seeded weights)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the folders of 8 in fp32 and bf16 (minutes on a CPU)")
    args = ap.parse_args()
    import torch

    from algnet_cli.runner import pick_precision

    auto = {torch.float32: "fp32", torch.bfloat16: "bf16"}[pick_precision("auto", torch.device("cpu"))]
    print(f"algnet deblur on the CPU, 1280x720 photos from {args.photo.name}, model {args.model}, on {machine()}")
    print(f"  --precision auto picks {auto} here")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos(args.photo, tmp / "one", 1)
        photos(args.photo, tmp / "four", 4)
        photos(args.photo, tmp / "eight", 8)
        # with the first forward's memory faulted in during start-up (the default) and without, alternated
        # so that both see the same moments of this machine: one photo end to end, and a folder of 4
        # (its first image's model time against the median of the other 3)
        walls: dict[bool, list[float]] = {True: [], False: []}
        firsts: dict[bool, list[float]] = {True: [], False: []}
        steadies: list[float] = []
        for _ in range(args.repeats):
            for on in (True, False):
                walls[on].append(deblur(tmp / "one", tmp / "o1", "fp32", args.model, prefault=on)[0])
                seconds = deblur(tmp / "four", tmp / "o4", "fp32", args.model, prefault=on)[1]
                steadies.append(statistics.median(seconds[1:]))
                firsts[on].append(seconds[0] / steadies[-1])
        steady = statistics.median(steadies)
        print(f"  fp32, median of {args.repeats} runs each way, alternated; steady per-image time {steady:.2f} s")
        for on, label in (
            (True, "first forward's memory faulted in during start-up"),
            (False, "without (ALGNET_PREFAULT=0)"),
        ):
            wall, first = statistics.median(walls[on]), statistics.median(firsts[on])
            print(
                f"    {label:50s} one photo end to end {wall:5.2f} s = steady + {wall - steady:.2f} s; "
                f"first image {first:.2f}x steady (folder of 4)"
            )
        rows = {}
        for precision in () if args.no_bf16 else ("fp32", "bf16"):
            wall8, seconds = deblur(tmp / "eight", tmp / f"o8-{precision}", precision, args.model)
            rows[precision] = (wall8, seconds[0], statistics.median(seconds[1:]))
            print(f"  {precision}: folder of 8 {wall8:6.2f} s; steady per-image {rows[precision][2]:.2f} s")
        if rows:
            ratio = rows["fp32"][2] / rows["bf16"][2]
            print(f"  bf16 against fp32, steady per-image time: {ratio:.2f}x {'faster' if ratio >= 1 else 'as fast'}")
            values = [psnr(tmp / "o8-fp32" / f"p{i}.png", tmp / "o8-bf16" / f"p{i}.png") for i in range(8)]
            print(f"  bf16 output against fp32: {min(values):.1f} to {max(values):.1f} dB PSNR over the 8 photos")
    if args.gopro:  # the same rows as benchmarks/gpu.py, on this CPU: one timed forward after a warm-up each
        from gpu import models_section

        from algnet_cli.model import DEFAULT

        models_section(torch.device("cpu"), (720, 1280), DEFAULT, 1, str(args.photo), args.gopro_weights)


if __name__ == "__main__":
    with recorded("cpu_latency"):
        main()
