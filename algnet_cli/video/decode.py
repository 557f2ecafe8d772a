"""Reading videos: the source file, its streams, rotation and timestamps, through PyAV's bundled FFmpeg.

Frames are decoded as stored (the rotation is metadata, carried over by the encoder side). FFmpeg's
error messages while reading (a truncated file, damaged packets) become the report's problems, so a
damaged input gives the frames that decode.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UsageError, VideoError
from ..fileio import unreadable_reason

VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".wmv",
    ".flv",
    ".ogv",
    ".3gp",
    ".3g2",
    ".f4v",
    ".vob",
    ".m2v",
    ".asf",
    ".mxf",
)
#: containers a video output may be written as (the --video-format choices), a subset of the above
OUTPUT_CONTAINERS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@functools.lru_cache(maxsize=1)
def pyav():
    """PyAV, imported on first use, with FFmpeg's log level set once."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise UsageError("video support needs PyAV: pip install av") from e
    av.logging.set_level(av.logging.ERROR)  # captured while reading and reported per file (see _Source.items)
    # PyAV drops a message equal to the last one it saw, process-wide: the second damaged file of a run
    # (or of a long-lived worker) would lose its "ended prematurely". Alike messages are counted per file
    # by log_lines instead.
    av.logging.set_skip_repeated(False)
    return av


@dataclass
class VideoReport:
    input: str
    output: str
    status: str = "done"  # done | partial (damaged input or interrupted) | failed | skipped
    frames: int = 0
    frames_expected: int | None = None
    frames_estimated: bool = False  # frames_expected from the duration and rate, not counted by the container
    fps: float | None = None
    size: tuple[int, int] | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    rotation: int = 0
    streams: list[str] = field(default_factory=list)  # what happened to each other stream
    problems: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # FFmpeg's own messages while writing, kept for the record
    usage: bool = False  # it failed for a usage error (the exit code says 2)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v not in (None, []) and k not in ("frames_estimated", "usage")}
        if self.frames_estimated and self.frames_expected:  # a guess from the duration: named as one
            d["frames_expected_estimate"] = d.pop("frames_expected")
        d["seconds"] = round(self.seconds, 3)
        if self.size:
            d["size"] = list(self.size)
        return d


def high_bit(pix_fmt: str | None) -> bool:
    if not pix_fmt:
        return False
    av = pyav()
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt, 16, 16).components) > 8
    except Exception:
        return False


@dataclass
class Frame:
    index: int
    pixels: np.ndarray
    pts: int | None
    time_base: Fraction | None
    duration: int | None = None


class Source:
    """Decoded frames and copyable packets of one video file, in file order."""

    def __init__(self, path: Path, report: VideoReport, copy_others: bool = True):
        av = pyav()
        self.path = path
        self.report = report
        why = unreadable_reason(path)
        if why is not None:
            raise VideoError(path, why)
        try:
            self.container = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as e:
            raise VideoError(path, f"cannot open as a video ({reason(e)})") from None
        self.video = main_video_stream(self.container)
        if self.video is None:
            self.container.close()
            raise VideoError(path, "no video stream")
        self.video.thread_type = "AUTO"
        cc = self.video.codec_context
        self.width, self.height = cc.width, cc.height
        self.sar = cc.sample_aspect_ratio  # None or 1: square pixels
        self.pix_fmt = cc.format.name if cc.format else None
        self.high_bit = high_bit(self.pix_fmt)
        self.rgb = "rgb48le" if self.high_bit else "rgb24"
        self.rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        self.time_base = self.video.time_base
        self.rotation = first_frame_rotation(path)
        self.frames_expected = self.video.frames or None
        self.frames_estimated = not self.frames_expected
        if not self.frames_expected and self.video.duration and self.time_base:
            self.frames_expected = round(float(self.video.duration * self.time_base * self.rate)) or None
        if not self.frames_expected and self.container.duration:
            self.frames_expected = round(self.container.duration / 1_000_000 * float(self.rate)) or None
        self.others = (
            [s for s in self.container.streams if s.type in ("audio", "subtitle") and s.index != self.video.index]
            if copy_others
            else []
        )
        if copy_others:
            for s in self.container.streams:
                if s.index != self.video.index and s not in self.others:
                    name = s.codec_context.name if s.codec_context else "unknown codec"
                    report.streams.append(f"{s.type} #{s.index} ({name}): not carried over")
        self.metadata = dict(self.container.metadata)

    def close(self) -> None:
        self.container.close()

    def items(self, decode_audio: set[int], frames: bool = True) -> Iterable:
        """Yield Frame objects for video frames and packets (or decoded frames) of the other streams.

        FFmpeg's error messages while reading (a truncated file, damaged packets) become problems.
        """
        av = pyav()
        with av.logging.Capture() as logs:
            try:
                yield from self._items(decode_audio, frames)
            finally:
                self._problems_from_log(logs)

    def _problems_from_log(self, logs) -> None:
        for line in log_lines(logs):
            self._problem(line)

    def _items(self, decode_audio: set[int], frames: bool = True) -> Iterable:
        av = pyav()
        index = 0
        when = BestEffortTimestamps()
        streams = [self.video, *self.others] if frames else self.others
        if not streams:
            return
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.index != self.video.index:
                    if packet.size == 0:
                        continue
                    if packet.stream.index in decode_audio:
                        try:
                            for f in packet.decode():
                                yield ("audio", packet.stream.index, f)
                        except av.FFmpegError as e:
                            self._problem(f"audio packet at {_when(packet)}: {reason(e)}")
                    else:
                        yield ("packet", packet.stream.index, packet)
                    continue
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    self._problem(f"video packet at {_when(packet)} did not decode ({reason(e)})")
                    continue
                for f in decoded:
                    index += 1
                    if f.is_corrupt:
                        self._problem(f"frame {index} ({_when(packet)}) decoded with errors, concealed by the decoder")
                    pts = when(f.pts, f.dts)
                    yield ("frame", Frame(index, f.to_ndarray(format=self.rgb), pts, f.time_base, f.duration), None)
            for s in decode_audio:  # flush audio decoders
                stream = self.container.streams[s]
                try:
                    for f in stream.codec_context.decode(None):
                        yield ("audio", s, f)
                except av.FFmpegError:
                    pass
        except av.FFmpegError as e:
            self._problem(f"reading stopped after frame {index} ({reason(e)})")

    def _problem(self, text: str) -> None:
        self.report.problems.append(text)


class BestEffortTimestamps:
    """The presentation time of each decoded frame, as libavcodec's ``best_effort_timestamp`` chooses
    it (``guess_correct_pts``; PyAV does not expose it): the frame's pts, unless the pts have gone
    backwards more often than the dts have, then its dts. Containers without real pts (AVI with
    B-frames) number packets in decoding order, so their frames' pts come out of order; their dts
    do not. Where the guess switches it can repeat a time, which no encoder takes: a time that does
    not move forward becomes the last one plus one tick."""

    def __init__(self):
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts = self.last_dts = self.last = None

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        guess = pts if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None) else dts
        if guess is not None and self.last is not None and guess <= self.last:
            guess = self.last + 1
        self.last = guess if guess is not None else self.last
        return guess


def log_lines(logs) -> list[str]:
    """FFmpeg's error messages (captured with av.logging.Capture), alike ones (the same but for their
    numbers) counted together; each group shown as its first message, with its numbers."""
    groups: dict[str, list] = {}
    for level, name, message in logs:
        if level <= 16:  # av.logging.ERROR and worse
            text = f"{name or 'ffmpeg'}: {message.strip()}"
            groups.setdefault(re.sub(r"-?\d+", "N", text), [text, 0])[1] += 1
    return [first + (f" (and {count - 1} alike)" if count > 1 else "") for first, count in groups.values()]


def main_video_stream(container):
    """The first video stream that is not a cover picture; None when there is none."""
    av = pyav()
    cover = getattr(av.stream.Disposition, "attached_pic", 0)
    streams = list(container.streams.video)
    for s in streams:
        if not (int(s.disposition) & int(cover)):
            return s
    return streams[0] if streams else None


def first_frame_rotation(path: Path) -> int:
    """Display rotation in degrees (FFmpeg attaches the stream's display matrix to each frame)."""
    av = pyav()
    try:
        with av.logging.Capture(), av.open(str(path)) as c:
            for f in c.decode(main_video_stream(c)):
                return int(f.rotation or 0)
    except (av.FFmpegError, OSError, StopIteration):
        pass
    return 0


def _when(packet) -> str:
    try:
        return f"{float(packet.pts * packet.time_base):.3f} s"
    except Exception:
        return "an unknown time"


def reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(": '")[0].strip() or type(e).__name__


def reason_logged(e: BaseException) -> str:
    """:func:`reason`, with FFmpeg's own last message when the error carries one."""
    log = getattr(e, "log", None)
    detail = ": ".join(str(x).strip() for x in log[1:]) if isinstance(log, tuple) and len(log) == 3 else ""
    return f"{reason(e)} ({detail})" if detail else reason(e)


def probe(path: str | Path) -> dict:
    """Frame count (decoded), rate, duration, size, rotation and streams of a video file."""
    av = pyav()
    with av.open(str(path)) as c:
        v = main_video_stream(c)
        pts = [f.pts for f in c.decode(v)]
        return {
            "frames": len(pts),
            "fps": float(v.average_rate) if v.average_rate else None,
            "time_base": v.time_base,
            "pts": pts,
            "duration": float(c.duration / 1_000_000) if c.duration else None,
            "size": (v.codec_context.width, v.codec_context.height),
            "rotation": first_frame_rotation(Path(path)),
            "streams": [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams],
        }


def probe_header(path: str | Path) -> dict:
    """Size, rate and frame count from the container's header, without decoding."""
    why = unreadable_reason(Path(path))
    if why is not None:
        raise VideoError(path, why)
    av = pyav()
    with av.open(str(path)) as c:
        v = main_video_stream(c)
        return {
            "size": (v.codec_context.width, v.codec_context.height),
            "fps": float(v.average_rate or v.guessed_rate or 0),
            "frames": v.frames or None,
        }


def sample_frames(path: str | Path, count: int, fmt: str = "gray") -> list[np.ndarray]:
    """Up to ``count`` frames spread evenly over a video's duration, as stored (``fmt``: a PyAV
    pixel format such as ``gray`` or ``rgb24``): each is the first frame at or after an even share
    of the duration, found by seeking to the keyframe before it. A clip whose duration is unknown
    or that cannot seek is read twice from the start: its packets counted, then the frames at even
    shares of the count kept (never the whole clip in memory). Raises VideoError when the file does not open as a video."""
    path = Path(path)
    av = pyav()
    why = unreadable_reason(path)
    if why is not None:
        raise VideoError(path, why)
    try:
        with av.logging.Capture(), av.open(str(path)) as c:
            stream = main_video_stream(c)
            if stream is None:
                raise VideoError(path, "no video stream")
            stream.thread_type = "AUTO"
            frames = _seek_samples(c, stream, count, fmt)
            if frames is None:
                c.seek(0)
                total = sum(1 for packet in c.demux(stream) if packet.size)  # counted without decoding
                picks = {int((i + 0.5) * total / count) for i in range(count)}
                c.seek(0)
                frames = [f.to_ndarray(format=fmt) for i, f in enumerate(c.decode(stream)) if i in picks]
            return frames
    except av.FFmpegError as e:
        raise VideoError(path, f"cannot read frames ({reason(e)})") from None


def _seek_samples(container, stream, count: int, fmt: str) -> list[np.ndarray] | None:
    av = pyav()
    tb = stream.time_base
    start = stream.start_time or 0
    duration = stream.duration
    if (not duration or not tb) and container.duration:
        duration = int(container.duration / 1_000_000 / tb) if tb else None
    if not duration or not tb:
        return None
    out = []
    try:
        for i in range(count):
            target = start + int((i + 0.5) * duration / count)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for f in container.decode(stream):
                if f.pts is None or f.pts >= target:
                    out.append(f.to_ndarray(format=fmt))
                    break
    except av.FFmpegError:
        return None
    return out or None
