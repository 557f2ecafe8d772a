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
import json
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import VideoError
from ..fileio import atomic_write_text, commit_temp, make_temp
from ..interrupts import shielded
from .containers import ALPHA_IN_SIDE_DATA, EncodeOptions, codec_for, container_of, encoder_name, holds_encoder
from .decode import Source, VideoReport, has_alpha, main_video_stream, pyav, reason_logged
from .encode import Sink, VideoWriter, output_spec
from .process import Restorer, as_restorer, stream_frames


@dataclass(frozen=True)
class Segment:
    """Frames with ``start <= pts < end`` (``start`` None: from the first frame; ``end`` None: to the last)."""

    index: int
    start: int | None
    end: int | None
    frames: int


def segments_folder(dst: Path) -> Path:
    """Where a cluster keeps a video's finished segments until the join (hidden, beside the output)."""
    return dst.parent / f".{dst.name}.algnet-segments"


def index_segments(src: str | Path, parts: int) -> list[Segment]:
    """At most ``parts`` segments of nearly equal frame counts, cut at keyframes, from the packets alone.

    An empty list when the video cannot be cut (no timestamps, pts that only count packets, a single
    keyframe): process it whole.
    """
    av = pyav()
    with av.logging.Capture(), av.open(str(src)) as c:
        v = main_video_stream(c)
        reorders = bool(v.codec_context.has_b_frames)
        packets = [(p.pts, p.is_keyframe) for p in c.demux(v) if p.size]
    if not packets or any(pts is None for pts, _ in packets):
        return []
    if reorders and all(a[0] < b[0] for a, b in zip(packets, packets[1:])):
        return []  # a codec that reorders frames, with pts in decoding order (AVI): no real presentation times
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


#: what a segment that does not decode as its packets were indexed says (its container seeks imprecisely)
NOT_AS_INDEXED = "frames decoded"
#: the segments' container: NUT takes nearly every codec in the source's own time base (a codec it has
#: no tag for goes into the joined file's container instead). The exact timestamps are kept beside
#: each segment in any case: MP4 (an edit list in milliseconds) and Matroska (milliseconds) round them
SEGMENT_SUFFIX = ".nut"


def encode_segment(
    src: str | Path,
    segment: Segment,
    dst: str | Path,
    restorer: Restorer,
    options: EncodeOptions = EncodeOptions(),
    joined_into: str | Path | None = None,
) -> list[int]:
    """Deblur one segment of ``src`` into the NUT file ``dst`` (video only, atomic); its frames' timestamps.

    ``joined_into``: the file that the segments will be joined into; its container decides whether
    the codec headers go out of band, as they would in a single-machine run."""
    report = VideoReport(str(src), str(dst))
    global_header, container = None, "nut"
    source = Source(Path(src), report, copy_others=False)
    try:
        if joined_into is not None:  # encoded as the joined file's container wants it
            facts = container_of(Path(joined_into))
            joined, global_header = facts[0], facts[1]
            alpha = has_alpha(source.pix_fmt)
            options = codec_for(options, Path(joined_into), facts=facts, hdr=source.colour.hdr, alpha=alpha)
            encoder = encoder_name(options.codec)
            if not holds_encoder(container_of(Path(dst), "nut")[2], encoder):
                container = joined  # NUT has no tag for it (ProRes): the joined file's container holds it
            elif alpha and encoder in ALPHA_IN_SIDE_DATA and joined in ("matroska", "webm"):
                container = joined  # VP8/VP9's alpha is Matroska side data, which NUT drops
        spec = output_spec(
            options, source.width, source.height, source.pix_fmt, report,
            rate=source.rate, time_base=source.time_base, rgb=source.rgb,
            container_format=container, global_header=global_header, **source.picture(),
        )  # fmt: skip
        written: list[int] = []

        def frames():
            for f in _segment_frames(source, segment):
                written.append(f.pts)
                yield ("frame", f, None)

        writer = VideoWriter(Path(dst), spec, report)
        timing: list[tuple[int, int | None, int]] = []
        writer.sink.timing = timing
        stream_frames(frames(), writer, as_restorer(restorer), report)
    finally:
        source.close()
    if len(written) != segment.frames:
        Path(dst).unlink(missing_ok=True)
        raise VideoError(
            src, f"segment {segment.index + 1}: {len(written)} {NOT_AS_INDEXED}, {segment.frames} expected"
        )
    record = {"time_base": str(spec.time_base), "packets": timing}
    atomic_write_text(timing_path(Path(dst)), json.dumps(record))
    return written


def timing_path(part: Path) -> Path:
    """The exact timestamps of a segment's packets, as its encoder gave them; a segment without them
    is not finished."""
    return part.with_suffix(".timing.json")


def segment_done(part: Path) -> bool:
    return part.exists() and timing_path(part).exists()


def _segment_frames(source: Source, segment: Segment):
    av = pyav()
    c, v = source.container, source.video
    if segment.start is not None:
        c.seek(segment.start, stream=v, backward=True, any_frame=False)
    found = 0
    with av.logging.Capture():
        for packet in c.demux(v):
            for f in source.decode(packet):
                if f.pts is None or (segment.start is not None and f.pts < segment.start):
                    continue
                if segment.end is not None and f.pts >= segment.end:
                    continue
                found += 1
                yield source.frame(found, f, source.shifted(f.pts, f.time_base))
            if found >= segment.frames:
                return


def join_segments(
    src: str | Path, parts: list[Path], dst: str | Path, report: VideoReport, container_format: str | None = None
) -> None:
    """The segments' video packets, in order, with the source's other streams (copied, re-encoded or
    dropped as :class:`~algnet_cli.video.encode.Sink` decides), into ``dst``, atomically.

    Every failure (a segment that is missing or damaged, a muxer that refuses a packet, a full disk) is a
    :class:`VideoError` naming ``src``; nothing is left at ``dst`` and the segments are untouched."""
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
    except (av.FFmpegError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise VideoError(src, f"joining its segments failed: {reason_logged(e)}") from e
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
        rotation=source.rotation, container_format=container_format, **source.carried(),
    )  # fmt: skip


def _mux_all(source: Source, parts: list[Path], sink: Sink, report: VideoReport) -> None:
    """Video packets of every part and the source's other items, merged by time."""

    def video():
        last, delay = None, None
        for part in parts:
            shift = None
            for p in _timed_packets(part):
                if delay is None:  # the stream's decoding delay (B-frames), as its first segment has it
                    delay = max(0, p.pts - p.dts)
                if shift is None:
                    # a segment too short for B-frames (a last one of a frame or two) starts with no
                    # delay: its decoding times move back to the stream's, so that they run on evenly
                    # (an uneven step is read as another frame rate by MP4 demuxers)
                    room = p.dts - (last + 1) if last is not None else 0
                    shift = min(max(0, delay - (p.pts - p.dts)), max(0, room))
                p.dts -= shift
                if last is not None and p.dts <= last:  # a segment's encoder delay reaches into the one before
                    if p.pts <= last:
                        raise VideoError(part, f"packet at {p.pts} cannot follow decoding time {last}")
                    p.dts = last + 1
                last = p.dts
                yield _when(p.dts, p.time_base), 0, ("video", p)

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


def _timed_packets(part: Path):
    """The video packets of a segment, with the timestamps that its encoder gave them. A segment that
    does not match its timestamps is marked unfinished, so that a rerun encodes it again."""

    def damaged(why: str) -> VideoError:
        timing_path(part).unlink(missing_ok=True)
        return VideoError(part, f"{why}; a rerun encodes this segment again")

    try:
        record = json.loads(timing_path(part).read_text())
        time_base, timing = Fraction(record["time_base"]), record["packets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise damaged(f"its timestamps are missing or unreadable ({e})") from None
    k = -1
    try:
        with pyav().open(str(part)) as c:
            for k, p in enumerate(p for p in c.demux(c.streams.video[0]) if p.size):
                if k >= len(timing):
                    raise damaged(f"more packets than the {len(timing)} recorded")
                p.pts, p.dts, p.duration = timing[k]
                p.time_base = time_base
                if p.dts is None:
                    p.dts = p.pts
                yield p
    except (pyav().FFmpegError, IndexError) as e:
        raise damaged(f"unreadable after {k + 1} packets ({reason_logged(e)})") from None
    if k + 1 != len(timing):
        raise damaged(f"{k + 1} packets, {len(timing)} recorded")


def _when(stamp: int | None, time_base: Fraction | None) -> float:
    if stamp is None or time_base is None:
        return float("-inf")
    return float(stamp * time_base)
