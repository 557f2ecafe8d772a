"""A folder of 1280x720 photos through the embedded model: one process, a local Ray cluster with 1 worker,
and with 2 workers, side by side in one run.

For each: wall time, images per second while working, and the fixed start/stop cost (loading the model
in one process; starting Ray, its workers and their models, and stopping them, on the cluster). Then the
crossover: how many images a run needs before the cluster's higher rate pays for its fixed cost.
Run: python benchmarks/cluster.py [--images 6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402


def make_photos(folder: Path, n: int) -> None:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    folder.mkdir(parents=True)
    for i in range(n):
        img = cv2.GaussianBlur(cv2.resize(sources[i % 4], (1280, 720), interpolation=cv2.INTER_CUBIC), (0, 0), 1.5)
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def _plan(src: Path, out: Path):
    from algnet_cli.batch import OutputOptions, Request, plan

    return plan(Request((str(src),), output=OutputOptions(out)))


def plain(src: Path, out: Path) -> tuple[float, float, float]:
    """(fixed seconds, working seconds, model seconds an image) of the single-process path."""
    from algnet_cli import Deblurrer
    from algnet_cli.batch import run_images

    t0 = time.perf_counter()
    deblurrer = Deblurrer("default", device="cpu")
    t1 = time.perf_counter()
    job = _plan(src, out)
    results = run_images(job.images, deblurrer, job.request.output)
    t2 = time.perf_counter()
    assert all(r.status == "done" for r in results), results
    return t1 - t0, t2 - t1, sum(r.seconds for r in results) / len(results)


def cluster(src: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """(fixed seconds, working seconds, model seconds an image) on a local Ray cluster started for the run."""
    from algnet_cli.cluster import ClusterOptions
    from algnet_cli.cluster.connect import connect
    from algnet_cli.cluster.driver import WorkerPool, schedule_images

    options = ClusterOptions("local", workers)
    t0 = time.perf_counter()
    with connect(options) as ray:
        pool = WorkerPool(ray, {"model": "default", "device": "cpu"}, options)
        while len(pool.idle) < pool.size:  # every worker has its model
            pool.poll(timeout=1.0)
        t1 = time.perf_counter()
        job = _plan(src, out)
        results = schedule_images(pool, job.images, job.request.output, lambda r: None)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    assert all(r.status == "done" for r in results), results
    return (t1 - t0) + (t3 - t2), t2 - t1, sum(r.seconds for r in results) / len(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    args = ap.parse_args()
    n = args.images
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "in", n)
        rows.append(("one process", *plain(tmp / "in", tmp / "a")))
        rows.append(("Ray, 1 worker", *cluster(tmp / "in", tmp / "b", 1)))
        rows.append(("Ray, 2 workers", *cluster(tmp / "in", tmp / "c", 2)))
    print(f"{n} photos of 1280x720, embedded model, CPU, on {machine()}")
    base_fixed, base_work = rows[0][1], rows[0][2]
    for name, fixed, work, model in rows:
        print(
            f"  {name:15s} wall {fixed + work:6.1f} s   {n / work:5.3f} images/s while working"
            f"   fixed start/stop {fixed:5.1f} s   wall vs one process {(fixed + work) / (base_fixed + base_work):.2f}x"
            f"   model {model:.2f} s an image"
        )
    per_image = base_work / n
    for name, fixed, work, _ in rows[1:]:
        gain = per_image - work / n
        if gain <= 0:
            print(f"  {name}: never pays on this machine ({work / n:.2f} s an image against {per_image:.2f} s)")
        else:
            print(f"  {name}: pays from {int((fixed - base_fixed) / gain) + 1} images on ({gain:.2f} s saved an image)")


if __name__ == "__main__":
    with recorded("cluster"):
        main()
