"""Looking into a video without processing it: its facts (frames, rate, size, streams), its header
alone, and frames sampled across its duration (for triage and previews)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VideoError
from ..fileio import unreadable_reason
from .decode import first_frame_rotation, main_video_stream, pyav, reason


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
