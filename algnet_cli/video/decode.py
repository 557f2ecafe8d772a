"""Reading videos: the source file, its streams, rotation and timestamps, through PyAV's bundled FFmpeg.

Frames are decoded as stored (the rotation is metadata, carried over by the encoder side). FFmpeg's
error messages while reading (a truncated file, damaged packets) become the report's problems, so a
damaged input gives the frames that decode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import VideoError
from ..fileio import unreadable_reason
from .colour import Mastering, colour_of, mastering_of, to_rgb
from .libav import pyav

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


def has_alpha(pix_fmt: str | None) -> bool:
    if not pix_fmt:
        return False
    try:
        return any(c.is_alpha for c in pyav().VideoFormat(pix_fmt, 16, 16).components)
    except Exception:
        return False


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
    alpha: np.ndarray | None = None  # the source's transparency, (H, W), kept beside the model's RGB


@dataclass
class FirstFrame:
    """What only a decoded frame says of a video: its display rotation, colour tags missing from the
    header, HDR10 side data and whether it is interlaced."""

    rotation: int = 0
    frame: object = None  # the frame itself (its colour fields), None when none decodes
    mastering: Mastering | None = None
    interlaced: bool = False
    top_field_first: bool = True


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
        self.alpha_decoder = _alpha_decoder(self.video)
        if self.alpha_decoder is not None:  # VP8/VP9 with alpha in WebM: FFmpeg's own decoder drops the alpha
            self.pix_fmt = "yuva420p"
        self.high_bit = high_bit(self.pix_fmt)
        self.rgb = "rgb48le" if self.high_bit else "rgb24"
        self.rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        self.time_base = self.video.time_base
        first = first_frame_facts(path)
        self.rotation = first.rotation
        self.colour = colour_of(cc, first.frame)
        self.mastering = first.mastering
        self.field_order = int(getattr(cc, "field_order", 0) or 0)
        if self.field_order <= 1 and first.interlaced:  # progressive or unknown in the header, fields in the frames
            self.field_order = 2 if first.top_field_first else 3
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
        # the timeline starts at 0, as FFmpeg's own tools write it: a transport stream whose clock starts
        # at 10 hours is not written with 10 empty hours before it (the streams keep their offsets)
        start = self.container.start_time
        self.start = Fraction(start, 1_000_000) if start and start > 0 else Fraction(0)
        self.video_metadata = dict(self.video.metadata)
        self.chapters = [self._shifted_chapter(ch) for ch in self.container.chapters()]

    def _shifted_chapter(self, chapter: dict) -> dict:
        tb = chapter["time_base"]
        return {**chapter, "start": self.shifted(chapter["start"], tb), "end": self.shifted(chapter["end"], tb)}

    def carried(self) -> dict:
        """The :class:`~.encode.OutputSpec` fields that carry this file's tags and other streams over."""
        return {
            "metadata": tuple(self.metadata.items()),
            "video_metadata": tuple(self.video_metadata.items()),
            "chapters": tuple(self.chapters),
            "others": tuple(self.others),
            "late_start": any(
                s.start_time is not None and s.time_base and s.start_time * s.time_base > self.start
                for s in (self.video, *self.others)
            ),
        }

    def close(self) -> None:
        self.container.close()

    def shifted(self, stamp: int | None, time_base: Fraction | None) -> int | None:
        """A timestamp of this file on the output's timeline (which starts at 0)."""
        if stamp is None or not self.start or not time_base:
            return stamp
        return stamp - round(self.start / time_base)

    def picture(self) -> dict:
        """The :class:`~.encode.OutputSpec` fields that keep this video's look: pixel shape, colour,
        HDR10 metadata, field order."""
        return {"sar": self.sar, "colour": self.colour, "mastering": self.mastering, "field_order": self.field_order}

    def to_rgb(self, frame) -> np.ndarray:
        """A decoded frame as the model's RGB, converted with this video's own matrix and range."""
        return to_rgb(frame, self.rgb, self.colour)

    def frame(self, index: int, f, pts: int | None) -> Frame:
        """A decoded frame as a :class:`Frame`: RGB for the model, its alpha (if any) beside it."""
        if has_alpha(f.format.name):
            rgba = to_rgb(f, "rgba64le" if self.high_bit else "rgba", self.colour)
            return Frame(index, np.ascontiguousarray(rgba[..., :3]), pts, f.time_base, f.duration, rgba[..., 3].copy())
        return Frame(index, self.to_rgb(f), pts, f.time_base, f.duration)

    def decode(self, packet) -> list:
        """The frames of one video packet (through libvpx where the alpha needs it)."""
        if self.alpha_decoder is not None:
            return self.alpha_decoder.decode(packet)
        return packet.decode()

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
        step = round(1 / (self.rate * self.time_base)) if self.rate and self.time_base else 1
        when = BestEffortTimestamps(step)
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
                                f.pts = self.shifted(f.pts, f.time_base)
                                yield ("audio", packet.stream.index, f)
                        except av.FFmpegError as e:
                            self._problem(f"audio packet at {_when(packet)}: {reason(e)}")
                    else:
                        packet.pts = self.shifted(packet.pts, packet.time_base)
                        packet.dts = self.shifted(packet.dts, packet.time_base)
                        yield ("packet", packet.stream.index, packet)
                    continue
                try:
                    decoded = self.decode(packet)
                except av.FFmpegError as e:
                    self._problem(f"video packet at {_when(packet)} did not decode ({reason(e)})")
                    continue
                for f in decoded:
                    index += 1
                    if f.is_corrupt:
                        self._problem(f"frame {index} ({_when(packet)}) decoded with errors, concealed by the decoder")
                    pts = self.shifted(when(f.pts, f.dts), f.time_base)
                    yield ("frame", self.frame(index, f, pts), None)
            for s in decode_audio:  # flush audio decoders
                stream = self.container.streams[s]
                try:
                    for f in stream.codec_context.decode(None):
                        f.pts = self.shifted(f.pts, f.time_base)
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
    not move forward becomes the last one plus one tick. A frame with neither (MPEG program streams
    stamp only some packets) comes ``step`` ticks (one frame) after the last one."""

    def __init__(self, step: int = 1):
        self.step = max(1, step)
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.last: int | None = None

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        guess = pts if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None) else dts
        if guess is None and self.last is not None:
            guess = self.last + self.step
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


def _alpha_decoder(stream):
    """A libvpx decoder for a VP8/VP9 stream that carries alpha (WebM's ``alpha_mode``), else None."""
    name = stream.codec_context.name
    if name not in ("vp8", "vp9") or str(stream.metadata.get("alpha_mode", "")) != "1":
        return None
    try:
        return pyav().CodecContext.create("libvpx-vp9" if name == "vp9" else "libvpx", "r")
    except Exception:  # a build without libvpx's decoder: decoded without the alpha
        return None


def main_video_stream(container):
    """The first video stream that is not a cover picture; None when there is none."""
    av = pyav()
    cover = getattr(av.stream.Disposition, "attached_pic", 0)
    streams = list(container.streams.video)
    for s in streams:
        if not (int(s.disposition) & int(cover)):
            return s
    return streams[0] if streams else None


def first_frame_facts(path: Path) -> FirstFrame:
    """What the first decodable frame says: its rotation in degrees (FFmpeg attaches the stream's
    display matrix to each frame), colour, HDR10 side data and interlacing."""
    av = pyav()
    try:
        with av.logging.Capture(), av.open(str(path)) as c:
            for f in c.decode(main_video_stream(c)):
                return FirstFrame(
                    int(f.rotation or 0), f, mastering_of(f), bool(f.interlaced_frame),
                    bool(getattr(f, "top_field_first", True)),
                )  # fmt: skip
    except (av.FFmpegError, OSError, StopIteration):
        pass
    return FirstFrame()


def first_frame_rotation(path: Path) -> int:
    """Display rotation in degrees."""
    return first_frame_facts(path).rotation


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
