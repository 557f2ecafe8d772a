"""A video through the model: its frames streamed from the source, through a restorer, to the sink.

Frames stream through :class:`~algnet_cli.pipeline.Pipeline`: demuxed and decoded on a reader
thread, deblurred here (same-size frames batched as the restorer allows), encoded and muxed on a
writer thread, with short queues between them, so memory stays bounded for any length. The output
keeps the input's frame count and timestamps (the encoder works in the input stream's time base,
so variable frame rates survive), its rotation, size, and audio and subtitle streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import VideoError
from ..interrupts import shielded
from ..pipeline import Item, Pipeline
from .containers import EncodeOptions, codec_for
from .decode import Source, VideoReport, has_alpha, log_lines, pyav, reason, reason_logged
from .encode import VideoWriter, output_spec
from .frames import FrameFolderWriter

QUEUE_DEPTH = 4


class VideoInterrupted(KeyboardInterrupt):
    """An interrupt that stopped a video, carrying its report (status partial, the partial output
    finalised), so the run's record still lists it."""

    def __init__(self, report: VideoReport):
        super().__init__()
        self.report = report


class Restorer(Protocol):
    """What travels down to the video code: deblur a list of same-size frames, and say how many to
    take at once. :class:`~algnet_cli.api.Deblurrer` is one."""

    def deblur_many(self, frames: list[np.ndarray]) -> list[np.ndarray]: ...

    def frames_per_batch(self, height: int, width: int) -> int: ...


class FrameFunction:
    """A :class:`Restorer` from a function of one frame (one frame at a time)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn

    def deblur_many(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return [self.fn(f) for f in frames]

    def frames_per_batch(self, height: int, width: int) -> int:
        return 1


def as_restorer(restorer) -> Restorer:
    """A Restorer as is; a plain function of one frame wrapped as one."""
    return restorer if hasattr(restorer, "deblur_many") else FrameFunction(restorer)


def process_video(
    src: str | Path,
    dst: str | Path | None,
    restorer: Restorer | Callable[[np.ndarray], np.ndarray],
    options: EncodeOptions = EncodeOptions(),
    *,
    container_format: str | None = None,
    frames_out: str | Path | None = None,
    on_frame: Callable[[VideoReport], None] | None = None,
    on_start: Callable[[VideoReport], None] | None = None,
) -> VideoReport:
    """Deblur every frame of ``src`` into the video ``dst`` (or PNG frames under ``frames_out``).

    ``restorer`` maps (H, W, 3) uint8/uint16 frames to frames of the same shape and dtype (a
    :class:`Restorer`, or a function of one frame). Returns the report; raises VideoError/UsageError
    for a file that cannot be processed at all. KeyboardInterrupt is re-raised after the partial
    output has been finalised.
    """
    src = Path(src)
    report = VideoReport(str(src), str(frames_out if frames_out is not None else dst))
    # FFmpeg's messages while writing (the muxer's, the encoder's) go into this video's record, not
    # onto the terminal without a file name; the reader's own are its problems (see decode.Source)
    with pyav().logging.Capture(local=False) as logs:
        try:
            return _process(src, dst, report, restorer, options, container_format, frames_out, on_frame, on_start)
        finally:
            report.log = log_lines(logs)


def _process(src, dst, report, restorer, options, container_format, frames_out, on_frame, on_start) -> VideoReport:
    t0 = time.perf_counter()
    source = Source(src, report, copy_others=frames_out is None)
    try:
        report.fps, report.size = float(source.rate), (source.width, source.height)
        report.frames_expected, report.rotation = source.frames_expected, source.rotation
        report.frames_estimated = source.frames_estimated
        if on_start:
            on_start(report)
        writer: FrameFolderWriter | VideoWriter
        if frames_out is not None:
            writer = FrameFolderWriter(Path(frames_out), source.high_bit, str(src), source.frames_expected)
        else:
            spec = output_spec(
                codec_for(options, Path(dst), container_format, hdr=source.colour.hdr, alpha=has_alpha(source.pix_fmt)),
                source.width, source.height, source.pix_fmt, report,
                rate=source.rate, time_base=source.time_base, rgb=source.rgb, rotation=source.rotation,
                container_format=container_format, **source.carried(), **source.picture(),
            )  # fmt: skip
            writer = VideoWriter(Path(dst), spec, report)
        stream_frames(source.items(writer.decode_audio), writer, as_restorer(restorer), report, on_frame)
    finally:
        source.close()
        report.seconds = time.perf_counter() - t0
    if report.frames == 0:  # audio alone is no deblurred video: nothing was written
        n = report.frames_expected
        claimed = (
            (f" (its duration suggests about {n})" if report.frames_estimated else f" (its header claims {n})")
            if n
            else ""
        )
        raise VideoError(src, f"no video frame could be decoded{claimed}; nothing was written")
    if report.problems and report.status == "done":
        report.status = "partial"
    return report


def stream_frames(items: Iterable[tuple], writer, restorer: Restorer, report: VideoReport, on_frame=None) -> None:
    """Source items -> restorer -> writer, in file order; the output finalised (or, on an
    interrupt, kept as a valid partial) or abandoned on an error."""
    sizes: dict[tuple, int] = {}

    def batch_size(pixels: np.ndarray) -> int:
        if pixels.shape not in sizes:
            sizes[pixels.shape] = max(1, restorer.frames_per_batch(*pixels.shape[:2]))
        return sizes[pixels.shape]

    def save(item: Item) -> None:
        kind, a, b = item.key
        if kind == "frame":
            a.pixels = item.data
        try:
            writer.write(kind, a, b)
        except Exception as e:
            raise VideoError(report.output, f"writing failed ({reason(e)})") from e

    def done(item: Item) -> None:
        if item.key[0] == "frame":
            report.frames += 1
            if on_frame:
                on_frame(report)

    pipeline = Pipeline(
        lambda frames: (restorer.deblur_many(frames), None),
        save,
        depth=QUEUE_DEPTH,
        batch_key=lambda pixels: (pixels.shape, pixels.dtype.str),
        batch_size=batch_size,
        fail_fast=True,
    )
    stream = (Item(it, data=it[1].pixels, run=True) if it[0] == "frame" else Item(it, run=False) for it in items)
    try:
        pipeline.run(stream, done)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        with shielded():
            writer.abandon()
        raise
    else:
        interrupted = False
    try:
        with shielded():  # a second Ctrl-C must not cut the file being finalised in half
            try:
                writer.finish(report, interrupted)
            except (pyav().FFmpegError, ValueError) as e:  # the encoder's last packets refused by the muxer
                raise VideoError(report.output, f"writing failed ({reason_logged(e)})") from e
    except KeyboardInterrupt:  # held back while finalising, delivered now: the file is whole either way
        stopped = True
    else:
        stopped = interrupted
    if interrupted:
        report.status = "partial"
        report.problems.append(f"interrupted after {report.frames} frames")
    if stopped:
        raise VideoInterrupted(report)
