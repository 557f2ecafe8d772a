"""Small test videos made with real codecs through PyAV."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def frame_pixels(i: int, w: int, h: int, dtype=np.uint8) -> np.ndarray:
    """A frame with structure, unique per index (a bar whose width encodes i)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 7 + i * 13) % 256, (yy * 5 + i * 29) % 256, ((xx + yy) * 3) % 256], axis=2).astype(np.float64)
    img[:, : min(w, 2 * i + 1), 1] = 255
    if dtype == np.uint16:
        return (img * 257).astype(np.uint16)
    return img.astype(np.uint8)


def make_video(
    path,
    w: int,
    h: int,
    pts: list[int],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    time_base: Fraction = Fraction(1, 1000),
    rate: int = 25,
    rotation: int = 0,
    audio: str | None = "aac",
    high_bit: bool = False,
    container_format: str | None = None,
    options: dict | None = None,
    audio_rate: int = 48000,
    audio_start: float = 0.0,
    sar: Fraction | None = None,
) -> None:
    c = av.open(str(path), "w", format=container_format)
    s = c.add_stream(codec, rate=rate, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    if sar is not None:
        s.codec_context.sample_aspect_ratio = sar
    s.time_base = time_base
    s.codec_context.time_base = time_base
    if rotation:
        s.set_display_rotation(rotation)
    a = None
    if audio:
        a = c.add_stream(audio, rate=audio_rate)
        a.layout = "stereo"
    for i, p in enumerate(pts):
        img = frame_pixels(i, w, h, np.uint16 if high_bit else np.uint8)
        fr = av.VideoFrame.from_ndarray(img, format="rgb48le" if high_bit else "rgb24")
        fr.pts, fr.time_base = p, time_base
        for q in s.encode(fr):
            c.mux(q)
    for q in s.encode():
        c.mux(q)
    if a is not None:
        seconds = float(pts[-1] * time_base) + 0.1
        t = round(audio_start * audio_rate)
        rng = np.random.default_rng(0)
        while t < seconds * audio_rate:
            samples = (rng.standard_normal((2, 1024)) * 0.1).astype(np.float32)
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            af.sample_rate, af.pts = audio_rate, t
            t += 1024
            for q in a.encode(af):
                c.mux(q)
        for q in a.encode():
            c.mux(q)
    c.close()


def decoded_frames(path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def stream_packets(path, kind: str = "audio") -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(**{kind: 0}) if p.size]
