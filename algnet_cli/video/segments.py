"""A video in keyframe segments: indexed from packets, each segment deblurred and encoded on its own, then
joined by copying packets, with the other streams carried over once from the source.

Segment ``i`` holds the frames whose timestamps lie in ``[start_i, start_{i+1})``, where each start is
a keyframe. A segment is decoded from its keyframe on (past the next keyframe when needed: an open GOP
shows frames of the previous segment after its keyframe), so every frame is decoded from a clean
reference; frames outside its range are dropped. Every segment is encoded with the same settings, in
the source's time base, so the joined video has every frame and every timestamp of the source.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import VideoError
from ..fileio import commit_temp, make_temp
from ..interrupts import shielded
from .decode import Frame, Source, VideoReport, main_video_stream, pyav
from .encode import EncodeOptions, Sink, VideoWriter, output_spec
from .process import Restorer, as_restorer, stream_frames


@dataclass(frozen=True)
class Segment:
    """Frames with ``start <= pts < end`` (``start`` None: from the first frame; ``end`` None: to the last)."""

    index: int
    start: int | None
    end: int | None
    frames: int


def index_segments(src: str | Path, parts: int) -> list[Segment]:
    """At most ``parts`` segments of nearly equal frame counts, cut at keyframes, from the packets alone.

    An empty list when the video cannot be cut (no timestamps, a single keyframe): process it whole.
    """
    av = pyav()
    with av.logging.Capture(), av.open(str(src)) as c:
        v = main_video_stream(c)
        packets = [(p.pts, p.is_keyframe) for p in c.demux(v) if p.size]
    if not packets or any(pts is None for pts, _ in packets):
        return []
    times = sorted(pts for pts, _ in packets)
    keys = sorted({pts for pts, key in packets if key and pts > times[0]})
    before = {k: bisect_left(times, k) for k in keys}  # frames shown before each keyframe
    cuts = sorted(
        {min(keys, key=lambda k: abs(before[k] - j * len(times) / parts)) for j in range(1, parts)} if keys else set()
    )
    bounds = [None, *cuts, None]
    first = [0, *(before[k] for k in cuts), len(times)]  # index of each segment's first frame, in time order
    segments = [Segment(i, bounds[i], bounds[i + 1], first[i + 1] - first[i]) for i in range(len(bounds) - 1)]
    return segments if len(segments) > 1 else []


def encode_segment(
    src: str | Path, segment: Segment, dst: str | Path, restorer: Restorer, options: EncodeOptions = EncodeOptions()
) -> list[int]:
    """Deblur one segment of ``src`` into the video file ``dst`` (video only, atomic); its frames' timestamps."""
    report = VideoReport(str(src), str(dst))
    source = Source(Path(src), report, copy_others=False)
    try:
        spec = output_spec(
            options, source.width, source.height, source.pix_fmt, report,
            rate=source.rate, time_base=source.time_base, rgb=source.rgb,
        )  # fmt: skip
        written: list[int] = []

        def frames():
            for f in _segment_frames(source, segment):
                written.append(f.pts)
                yield ("frame", f, None)

        stream_frames(frames(), VideoWriter(Path(dst), spec, report), as_restorer(restorer), report)
    finally:
        source.close()
    if len(written) != segment.frames:
        Path(dst).unlink(missing_ok=True)
        raise VideoError(src, f"segment {segment.index + 1}: {len(written)} frames decoded, {segment.frames} expected")
    return written


def _segment_frames(source: Source, segment: Segment):
    av = pyav()
    c, v = source.container, source.video
    if segment.start is not None:
        c.seek(segment.start, stream=v, backward=True, any_frame=False)
    found = 0
    with av.logging.Capture():
        for packet in c.demux(v):
            for f in packet.decode():
                if f.pts is None or (segment.start is not None and f.pts < segment.start):
                    continue
                if segment.end is not None and f.pts >= segment.end:
                    continue
                found += 1
                yield Frame(found, f.to_ndarray(format=source.rgb), f.pts, f.time_base, f.duration)
            if found >= segment.frames:
                return


def join_segments(
    src: str | Path, parts: list[Path], dst: str | Path, report: VideoReport, container_format: str | None = None
) -> None:
    """The segments' video packets, in order, with the source's other streams (copied, re-encoded or
    dropped as :class:`~algnet_cli.video.encode.Sink` decides), into ``dst``, atomically."""
    av = pyav()
    source = Source(Path(src), report)
    tmp = make_temp(Path(dst))
    try:
        with av.open(str(parts[0])) as first:
            template = first.streams.video[0]
            sink = Sink(tmp, _join_spec(source, container_format), report, template=template)
            report.pix_fmt = template.codec_context.format.name if template.codec_context.format else None
        with shielded():
            _mux_all(source, parts, sink, report)
            sink.close()
            commit_temp(tmp, Path(dst))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    report.output = str(dst)
    report.rotation, report.fps, report.size = source.rotation, float(source.rate), (source.width, source.height)


def _join_spec(source: Source, container_format: str | None):
    from .encode import OutputSpec

    return OutputSpec(
        "", "", None, source.width, source.height, source.rate, source.time_base,
        rotation=source.rotation, container_format=container_format,
        metadata=tuple(source.metadata.items()), others=tuple(source.others),
    )  # fmt: skip


def _mux_all(source: Source, parts: list[Path], sink: Sink, report: VideoReport) -> None:
    """Video packets of every part and the source's other items, merged by time."""

    def video():
        for part in parts:
            with pyav().open(str(part)) as c:
                s = c.streams.video[0]
                for p in c.demux(s):
                    if p.size:
                        yield _when(p.dts if p.dts is not None else p.pts, p.time_base), 0, ("video", p)

    def others():
        for kind, index, item in source.items(sink.decode_audio, frames=False):
            stamp = item.dts if kind == "packet" else item.pts
            yield _when(stamp, item.time_base), 1, (kind, index, item)

    for _, _, entry in heapq.merge(video(), others(), key=lambda e: (e[0], e[1])):
        if entry[0] == "video":
            sink.video_packet(entry[1])
            report.frames += 1
        elif entry[0] == "packet":
            sink.packet(entry[1], entry[2])
        else:
            sink.audio(entry[1], entry[2])


def _when(stamp: int | None, time_base: Fraction | None) -> float:
    if stamp is None or time_base is None:
        return float("-inf")
    return float(stamp * time_base)
