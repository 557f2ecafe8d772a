"""`algnet deblur`'s pipeline against a plain sequential read-run-write loop, and a 24 MP image in tiles.

Part 1: a folder of 1920x1080 JPEGs through the batch pipeline (decode ahead, encode behind) and
through a sequential loop over the same model; megapixels per second of each, and the fraction of
wall time the model was busy in the pipeline. Part 2: one 6000x4000 (24 MP) image on the CPU with
the default memory budget (tiles), in a fresh process: wall time and peak resident memory.
Run: python benchmarks/batch.py [--files 3] [--skip-24mp]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure, recorded  # noqa: E402


def make_jpegs(folder: Path, n: int, size=(1920, 1080)) -> list[Path]:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    paths = []
    for i in range(n):
        img = cv2.resize(sources[i % len(sources)], size, interpolation=cv2.INTER_CUBIC)
        img = cv2.GaussianBlur(img, (0, 0), 1.5)
        p = folder / f"{i:03d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    return paths


def pipeline(paths: list[Path], out: Path, deblurrer) -> tuple[float, float]:
    from algnet_cli.batch import Job, OutputOptions, run_images

    jobs = [Job(p, out / p.name) for p in paths]
    t = time.perf_counter()
    results = run_images(jobs, deblurrer, OutputOptions(out, skip_existing=False))
    wall = time.perf_counter() - t
    busy = sum(r.seconds for r in results)
    assert all(r.status == "done" for r in results), results
    return wall, busy


def sequential(paths: list[Path], out: Path, deblurrer) -> float:
    from algnet_cli.images import read_image, read_metadata, write_image

    t = time.perf_counter()
    for p in paths:
        write_image(out / p.name, deblurrer.deblur(read_image(p)), meta=read_metadata(p))
    return time.perf_counter() - t


def big_setup(path: str):
    from algnet_cli import Deblurrer
    from algnet_cli.images import read_image

    return Deblurrer("default", device="cpu"), read_image(path)


def big_run(state):
    deblurrer, img = state
    return deblurrer.deblur(img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--skip-24mp", action="store_true")
    args = ap.parse_args()
    from algnet_cli import Deblurrer

    deblurrer = Deblurrer("default", device="cpu")
    print(f"algnet deblur pipeline, default model, CPU, on {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_jpegs(tmp, args.files)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        mp = args.files * 1920 * 1080 / 1e6
        from algnet_cli.images import read_image

        deblurrer.deblur(read_image(paths[0]))  # warm-up: the first full-size forward pays for fresh memory
        wall, busy = pipeline(paths, tmp / "a", deblurrer)
        seq = sequential(paths, tmp / "b", deblurrer)
        print(
            f"  {args.files} x 1920x1080 JPEG: pipeline {mp / wall:.3f} MP/s ({wall:.1f} s), "
            f"sequential loop {mp / seq:.3f} MP/s ({seq:.1f} s), ratio {seq / wall:.3f}"
        )
        print(f"  model busy {100 * busy / wall:.1f}% of the pipeline's wall time")
        if not args.skip_24mp:
            from skimage import data

            big = tmp / "big.png"
            img = cv2.resize(data.astronaut(), (6000, 4000), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(big), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            plan = deblurrer.runner.plan_tile(4000, 6000)
            t, mem = measure(functools.partial(big_setup, str(big)), big_run, repeats=1, warmup=False)
            print(
                f"  6000x4000 (24 MP): tiles of {plan} px, {t:.0f} s, peak extra memory {mem / 1024:.2f} GiB"
                " (default budget, --max-memory)"
            )


if __name__ == "__main__":
    with recorded("batch"):
        main()
