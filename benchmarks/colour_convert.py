"""The video path's colour conversions at 1280x720: YUV 4:2:0 (BT.709) to RGB and back, as every frame
of a video goes to and from the model, with one swscale context held for the whole video (what
``algnet_cli.video.colour`` does) beside a new one for every frame (what ``VideoFrame.reformat`` does).

Prints ms per frame for each, their ratio measured side by side in one run, and checks that both give
identical pixels.
Run: python benchmarks/colour_convert.py [--frames 30] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

from algnet_cli.video import colour as col  # noqa: E402


def per_frame(frame, colour):
    """The same conversions, each through the frame's own reformat (a fresh swscale context)."""
    rgb = frame.to_ndarray(format="rgb24", **col.conversion(colour, to_rgb=True))
    back = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", **col.conversion(colour, to_rgb=False)
    )
    return rgb, back


def held(frame, colour):
    rgb = col.to_rgb(frame, "rgb24", colour)
    return rgb, col.from_rgb(rgb, "rgb24", "yuv420p", colour)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    colour = col.Colour(col.BT709, col.LIMITED, col.BT709, col.BT709)
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(args.frames):
        f = av.VideoFrame.from_ndarray(rng.integers(16, 236, (h, w, 3), dtype=np.uint8), format="rgb24")
        frames.append(f.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range=1))
    with recorded("colour_convert"):
        print(f"machine: {machine()}")
        print(f"{args.frames} frames of {w}x{h} yuv420p BT.709 limited range, to RGB and back; ms per frame")
        times = {"a new swscale context per frame": 0.0, "one held context": 0.0}
        for f in frames[:2]:  # warm both
            per_frame(f, colour), held(f, colour)
        for f in frames:  # interleaved, so that both see the same machine
            t = time.perf_counter()
            a = per_frame(f, colour)
            times["a new swscale context per frame"] += time.perf_counter() - t
            t = time.perf_counter()
            b = held(f, colour)
            times["one held context"] += time.perf_counter() - t
            same = np.array_equal(a[0], b[0]) and np.array_equal(a[1].to_ndarray(), b[1].to_ndarray())
            assert same, "the two ways differ"
        for label, s in times.items():
            print(f"  {label:<34}{s / args.frames * 1e3:8.2f}")
        ratio = times["a new swscale context per frame"] / times["one held context"]
        print(f"held context: {ratio:.2f}x faster per frame, identical pixels")


if __name__ == "__main__":
    main()
