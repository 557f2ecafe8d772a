"""Still frames (a folder of numbered images) into one video."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import AlgnetError, UsageError
from .colour import SRGB
from .containers import EncodeOptions, codec_for
from .decode import Frame, VideoReport
from .encode import VideoWriter, output_spec
from .process import Restorer, as_restorer, stream_frames


def process_sequence(
    frames: list[Path],
    dst: str | Path,
    restorer: Restorer | Callable[[np.ndarray], np.ndarray],
    options: EncodeOptions = EncodeOptions(),
    *,
    container_format: str | None = None,
    on_frame: Callable[[VideoReport], None] | None = None,
) -> VideoReport:
    """Deblur a list of still frames (already in order) into one video at ``options.fps`` (default 25).

    A frame that cannot be read, or whose size differs from the first one's, is left out and named
    in the report's problems.
    """
    from ..images import read_image

    if not frames:
        raise UsageError("no frames to write as a video")
    fps = Fraction(options.fps or 25).limit_denominator(1001 * 1000)
    report = VideoReport(f"{frames[0].parent} ({len(frames)} frames)", str(dst), fps=float(fps))
    report.frames_expected = len(frames)
    gaps = numbering_gaps(frames)
    if gaps:
        report.streams.append(gaps)
    t0 = time.perf_counter()
    first = read_image(frames[0])
    h, w = first.shape[:2]
    report.size = (w, h)
    high = first.dtype == np.uint16
    rgb = "rgb48le" if high else "rgb24"
    spec = output_spec(
        codec_for(options, Path(dst), container_format),
        w,
        h,
        rgb,
        report,
        rate=fps,
        time_base=1 / fps,
        rgb=rgb,
        container_format=container_format,
        colour=SRGB,  # images are sRGB: BT.709 YUV, tagged so
    )

    def items() -> Iterator[tuple]:
        for i, path in enumerate(frames, start=1):
            try:
                img = first if i == 1 else read_image(path)
            except AlgnetError as e:
                report.problems.append(str(e))
                continue
            img = _as_rgb(img, high)
            if img.shape[:2] != (h, w):
                report.problems.append(
                    f"{path}: {img.shape[1]}x{img.shape[0]}, not {w}x{h} like the first frame; left out"
                )
                continue
            yield ("frame", Frame(i, img, i - 1, spec.time_base, 1), None)

    writer = VideoWriter(Path(dst), spec, report)
    try:
        stream_frames(items(), writer, as_restorer(restorer), report, on_frame)
    finally:
        report.seconds = time.perf_counter() - t0
    if report.problems and report.status == "done":
        report.status = "partial"
    return report


def _as_rgb(img: np.ndarray, high: bool) -> np.ndarray:
    """(H, W[, C]) -> (H, W, 3) of the sequence's depth: grey to three equal channels, alpha dropped."""
    if img.ndim == 2:
        img = img[..., None]
    img = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] <= 2 else img[..., :3]
    if high and img.dtype == np.uint8:
        img = img.astype(np.uint16) * 257
    elif not high and img.dtype != np.uint8:
        from ..images import to_8bit

        img = to_8bit(img)
    return np.ascontiguousarray(img)


def numbering_gaps(frames: list[Path]) -> str | None:
    """A note when the frames are numbered (the last number in each name) and numbers are missing
    between them: a dropped frame makes the video jump at that point."""
    import re

    numbers = []
    for path in frames:
        found = re.findall(r"\d+", path.stem)
        if not found:
            return None
        numbers.append(int(found[-1]))
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b - a > 1]
    if not gaps:
        return None
    missing = sum(b - a - 1 for a, b in gaps)
    shown = ", ".join(f"{a + 1}" if b - a == 2 else f"{a + 1}-{b - 1}" for a, b in gaps[:3])
    more = f" and {len(gaps) - 3} more gaps" if len(gaps) > 3 else ""
    return f"frames: {missing} numbers missing from the sequence ({shown}{more}); the video jumps there"
