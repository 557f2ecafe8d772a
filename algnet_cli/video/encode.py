"""Writing videos: encoder and pixel-format choice, the stream copy/re-encode policy, and the sink.

One :class:`OutputSpec` says how a video is written, whether its frames come from a video or from
still images. The output is written under a temporary name (through :mod:`algnet_cli.fileio`) and
renamed when complete; an interrupted one is finalised as ``NAME.partial.EXT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import UsageError, VideoError
from ..fileio import commit_temp, make_temp
from .decode import Frame, VideoReport, pyav, reason

CODEC_ALIASES = {
    "h264": "libx264",
    "avc": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
#: the default: H.264 where the output's container holds it, else that container's own video codec
#: (VP9 in WebM, VP8 in Ogg), see :func:`codec_for`
AUTO_CODEC = "auto"
DEFAULT_CODEC = AUTO_CODEC
DEFAULT_CRF = 18


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = DEFAULT_CODEC
    crf: int | None = DEFAULT_CRF
    pix_fmt: str | None = None  # None: the source's when the encoder takes it and the size allows, else yuv420p
    fps: float | None = None  # frame sequences only


def encoder_name(codec: str) -> str:
    """The FFmpeg encoder for a user's codec name (h264 -> libx264; auto, without a container to ask:
    libx264), checked to exist."""
    av = pyav()
    if codec == AUTO_CODEC:
        codec = "h264"
    name = CODEC_ALIASES.get(codec.lower(), codec)
    try:
        c = av.codec.Codec(name, "w")
    except Exception:
        raise UsageError(f"--codec {codec}: no such video encoder in this FFmpeg build") from None
    if c.type != "video":
        raise UsageError(f"--codec {codec}: {name} is not a video encoder")
    return name


def check_encode_options(options: EncodeOptions, suffixes) -> None:
    """Refuse, before any work, a codec or pixel format that does not exist, and a codec that a
    container among ``suffixes`` (the outputs' file suffixes) cannot hold."""
    av = pyav()
    encoder = encoder_name(options.codec)
    codec = av.codec.Codec(encoder, "w")
    auto = options.codec == AUTO_CODEC  # made concrete per output, so every container takes it
    if options.pix_fmt is not None:
        try:
            av.VideoFormat(options.pix_fmt, 16, 16)
        except Exception:
            raise UsageError(f"--pix-fmt {options.pix_fmt}: no such pixel format") from None
        supported = [f.name for f in (codec.video_formats or [])]
        if supported and options.pix_fmt not in supported:
            raise UsageError(
                f"--pix-fmt {options.pix_fmt}: {encoder} does not take it; it takes {', '.join(supported[:12])}"
            )
    for suffix in sorted(set(suffixes)):
        try:
            holds = container_of(Path("output" + suffix))[2]
        except VideoError:  # a container FFmpeg cannot name: the muxer reports it per file
            continue
        if not auto and not holds_encoder(holds, encoder):
            raise UsageError(
                f"--codec {options.codec}: a {suffix} file cannot hold {encoder} video; choose another --codec"
            )


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """(horizontal, vertical) chroma subsampling of a pixel format."""
    av = pyav()
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    comps = fmt.components
    if len(comps) < 3 or fmt.is_rgb:
        return False, False
    return comps[1].width < 16, comps[1].height < 16


def choose_pix_fmt(
    encoder: str, requested: str | None, source: str | None, width: int, height: int
) -> tuple[str, str | None]:
    """The output pixel format and a note when it is not the obvious one."""
    av = pyav()
    supported = [f.name for f in (av.codec.Codec(encoder, "w").video_formats or [])]

    def fits(fmt: str) -> bool:
        h_sub, v_sub = _subsampled(fmt)
        return not (h_sub and width % 2) and not (v_sub and height % 2)

    if requested:
        if supported and requested not in supported:
            raise UsageError(f"--pix-fmt {requested}: {encoder} takes {', '.join(supported)}")
        if not fits(requested):
            raise UsageError(
                f"--pix-fmt {requested} needs an even width and height; this video is {width}x{height} "
                f"(use yuv444p, or another format without chroma subsampling)"
            )
        return requested, None
    rgb_like = {
        "rgb24": ["bgr0", "gbrp"],
        "rgb48le": ["gbrp16le", "gbrp12le", "gbrp10le", "yuv420p10le", "yuv444p10le"],
    }.get(source or "")
    if rgb_like is not None:  # frames from images: exact RGB where the encoder has it (ffv1), else the usual
        for fmt in rgb_like:
            if fmt in supported and fits(fmt):
                return fmt, None
        source = None
    for candidate in (source, "yuv420p", "yuv444p", "bgr0", "gbrp"):
        fmt = candidate or ""
        if fmt and (not supported or fmt in supported) and fits(fmt):
            note = None
            if (
                fmt != (source or fmt)
                or (fmt == "yuv444p" and source not in (None, "yuv444p"))
                or (fmt == "yuv444p" and not fits("yuv420p"))
            ):
                why = f"{width}x{height} is odd" if not fits("yuv420p") else f"{encoder} does not take {source}"
                note = f"pixel format {fmt} ({why})"
            return fmt, note
    fallback = next((f for f in supported if fits(f)), None)
    if fallback is None:
        raise UsageError(f"{encoder} cannot encode a {width}x{height} video")
    return fallback, f"pixel format {fallback}"


def container_of(path: Path, container_format: str | None = None) -> tuple[str, bool, frozenset, str | None]:
    """The container FFmpeg writes for ``path`` (by its name, or ``container_format``): its name,
    whether it keeps codec headers out of band (global headers), the codecs it can hold (empty: any)
    and its own default video codec. Nothing is created."""
    av = pyav()
    try:
        with av.open(str(path), "w", format=container_format) as c:
            holds = frozenset(c.supported_codecs or ())
            return c.format.name, bool(c.format.flags & 0x40), holds, c.default_video_codec  # 0x40: GLOBALHEADER
    except (av.FFmpegError, ValueError) as e:
        raise VideoError(path, f"cannot write this container ({reason(e)})") from None


def holds_encoder(holds: frozenset, encoder: str) -> bool:
    """Whether a container that holds the codecs ``holds`` (empty: any) takes what ``encoder``
    writes: by the encoder's own name, FFmpeg's name for it, or the codec it writes."""
    if not holds:
        return True
    codec = pyav().codec.Codec(encoder, "w")
    return bool({encoder, codec.name, codec.canonical_name} & holds)


def codec_for(options: EncodeOptions, dst: Path, container_format: str | None = None, facts=None) -> EncodeOptions:
    """``options`` with ``auto`` made concrete for the output ``dst``: H.264 where its container holds
    it, else the container's own video codec (a .webm output gets VP9). ``facts``: what
    :func:`container_of` says of ``dst``, when the caller has it already."""
    if options.codec != AUTO_CODEC:
        return options
    import dataclasses

    _, _, holds, default = facts or container_of(Path(dst), container_format)
    codec = "h264" if holds_encoder(holds, "libx264") or not default else default
    return dataclasses.replace(options, codec=codec)


def partial_path(dst: Path) -> Path:
    return dst.with_name(dst.stem + ".partial" + dst.suffix)


@dataclass(frozen=True)
class OutputSpec:
    """How one video is written: container, encoder and its settings, geometry, timing, and the
    other streams of the source to carry over."""

    encoder: str
    pix_fmt: str
    crf: int | None
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    rgb: str = "rgb24"  # the frames' layout: rgb24, or rgb48le above 8 bit
    rotation: int = 0
    container_format: str | None = None
    metadata: tuple = ()  # (key, value) pairs of container metadata
    #: codec headers out of band (True) or in the stream (False); None: as the container wants.
    #: A segment written for a later join sets it as the joined file's container wants.
    global_header: bool | None = None
    others: tuple = ()  # the source's audio and subtitle streams
    sar: Fraction | None = None  # the source's pixel shape (sample aspect ratio); None or 1: square


def output_spec(
    options: EncodeOptions, width: int, height: int, source_pix_fmt: str | None, report: VideoReport, **timing
) -> OutputSpec:
    """Choose the encoder and pixel format for ``options`` and a frame size; the choice goes in the
    report (with a note when the pixel format is not the obvious one). ``timing``: rate,
    time_base and the other :class:`OutputSpec` fields."""
    encoder = encoder_name(options.codec)
    pix_fmt, note = choose_pix_fmt(encoder, options.pix_fmt, source_pix_fmt, width, height)
    if note:
        report.streams.append(f"video: {note}")
    report.codec, report.pix_fmt = encoder, pix_fmt
    return OutputSpec(encoder, pix_fmt, options.crf, width, height, **timing)


class Sink:
    """An output container: one encoded video stream, copied or re-encoded other streams."""

    def __init__(self, path: Path, spec: OutputSpec, report: VideoReport, template=None):
        """``template``: a video stream whose encoded packets will be copied in (:meth:`video_packet`)
        instead of frames encoded here; the encoder fields of ``spec`` are then unused."""
        av = pyav()
        self.report = report
        self.rgb = spec.rgb
        try:
            self.container = av.open(str(path), "w", format=spec.container_format)
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(path, f"cannot write this container ({reason(e)})") from None
        supported = self.container.supported_codecs
        self.encoding = template is None
        if template is not None:
            self.video = self.container.add_stream_from_template(template)
            self.video.time_base = spec.time_base
            self.video.codec_context.framerate = spec.rate  # the source's, as an encoder stream gets
        else:
            self.video = self._encoder_stream(path, spec, supported)
        if spec.rotation:
            try:
                self.video.set_display_rotation(spec.rotation)
            except Exception:
                report.problems.append("could not carry the rotation over")
        for k, v in spec.metadata:
            if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                self.container.metadata[k] = v
        self.map: dict[int, Any] = {}
        self.decode_audio: set[int] = set()
        for s in spec.others:
            name = s.codec_context.name if s.codec_context else None
            if name and (not supported or name in supported):
                self.map[s.index] = self.container.add_stream_from_template(s)
                report.streams.append(f"{s.type} #{s.index} ({name}): copied")
            elif s.type == "audio":
                target = self.container.default_audio_codec
                if target in (None, "none"):
                    report.streams.append(f"audio #{s.index} ({name}): dropped, the container takes no audio")
                    continue
                target = {"vorbis": "libvorbis", "opus": "libopus"}.get(target, target)
                rate, rates = s.codec_context.sample_rate, av.codec.Codec(target, "w").audio_rates
                if rates and rate not in rates:  # Opus takes 48 kHz (and less), not 44.1: resampled on encoding
                    rate = 48000 if 48000 in rates else max(rates)
                    report.streams.append(f"audio #{s.index}: resampled to {rate} Hz for {target}")
                out = self.container.add_stream(target, rate=rate)
                try:
                    out.layout = s.codec_context.layout
                except Exception:
                    pass
                self.map[s.index] = out
                self.decode_audio.add(s.index)
                report.streams.append(
                    f"audio #{s.index} ({name}): re-encoded to {target}, the {self.container.format.name} container cannot hold {name}"
                )
            else:
                report.streams.append(
                    f"{s.type} #{s.index} ({name}): dropped, the {self.container.format.name} container cannot hold it"
                )
        self.durations: dict[int, int] = {}
        #: (pts, dts, duration) of each encoded video packet, in the encoder's time base, when kept
        self.timing: list[tuple[int, int | None, int]] | None = None

    def _encoder_stream(self, path: Path, spec: OutputSpec, supported):
        av = pyav()
        encoder = spec.encoder
        if not holds_encoder(frozenset(supported or ()), encoder):
            fmt = self.container.format.name
            self.container.close()
            raise UsageError(f"{path.name}: the {fmt} container cannot hold {encoder} video; choose another --codec")
        options = {"crf": str(spec.crf)} if spec.crf is not None and encoder in CRF_CODECS else {}
        if encoder == "libvpx-vp9" and options:
            options["b"] = "0"
        if encoder == "libx265":  # x265 prints its own lines on stderr: warnings only, errors only with -q
            import logging

            quiet = not logging.getLogger("algnet_cli").isEnabledFor(logging.WARNING)
            options["x265-params"] = f"log-level={'error' if quiet else 'warning'}"
        video = self.container.add_stream(encoder, rate=spec.rate, options=options)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, spec.pix_fmt
        video.time_base = spec.time_base
        video.codec_context.time_base = spec.time_base
        if spec.sar and spec.sar != 1:  # non-square pixels: displayed at the source's shape
            video.codec_context.sample_aspect_ratio = spec.sar
        if spec.global_header is not None:
            flag = av.codec.context.Flags.global_header
            ctx = video.codec_context
            ctx.flags = (ctx.flags | flag) if spec.global_header else (ctx.flags & ~flag)
        return video

    def video_packet(self, packet) -> None:
        """An encoded packet of the template's stream, copied as it is."""
        packet.stream = self.video
        self.container.mux(packet)

    def frame(self, f: Frame) -> None:
        av = pyav()
        vf = av.VideoFrame.from_ndarray(f.pixels, format=self.rgb)
        vf.pts = f.pts
        if f.time_base is not None:
            vf.time_base = f.time_base
        if f.duration:
            vf.duration = f.duration
            if f.pts is not None:
                self.durations[f.pts] = f.duration
        self._mux_video(self.video.encode(vf))

    def _mux_video(self, packets) -> None:
        for p in packets:
            # the input's frame durations, so the last frame (and the stream) lasts as long as before
            d = self.durations.pop(p.pts, None)
            if d:
                p.duration = d
            if self.timing is not None:
                self.timing.append((p.pts, p.dts, p.duration))
            self.container.mux(p)

    def packet(self, stream_index: int, packet) -> None:
        packet.stream = self.map[stream_index]
        self.container.mux(packet)

    def audio(self, stream_index: int, frame) -> None:
        # the frame keeps its time (PyAV rescales it to the encoder's, resampling where the rate changes):
        # audio that starts after the video still starts there once re-encoded
        for p in self.map[stream_index].encode(frame):
            self.container.mux(p)

    def close(self, comment: str | None = None) -> None:
        try:
            if self.encoding:
                self._mux_video(self.video.encode(None))
            for idx in self.decode_audio:
                for p in self.map[idx].encode(None):
                    self.container.mux(p)
        finally:
            self.container.close()


class VideoWriter:
    """A :class:`Sink` writing to a temporary file next to ``dst``, renamed into place by :meth:`finish`."""

    def __init__(self, dst: Path, spec: OutputSpec, report: VideoReport):
        self.dst = dst
        self.tmp = make_temp(dst)
        try:
            self.sink = Sink(self.tmp, spec, report)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.decode_audio = self.sink.decode_audio

    def write(self, kind: str, a, b) -> None:
        """One item of the stream: ("frame", Frame, None), ("packet", stream, packet) or ("audio", stream, frame)."""
        if kind == "frame":
            self.sink.frame(a)
        elif kind == "packet":
            self.sink.packet(a, b)
        else:
            self.sink.audio(a, b)

    def finish(self, report: VideoReport, interrupted: bool) -> None:
        if interrupted:
            self.sink.container.metadata["comment"] = f"partial: the first {report.frames} frames, interrupted"
        try:
            self.sink.close()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        if report.frames == 0:
            self.tmp.unlink(missing_ok=True)
            return
        target = partial_path(self.dst) if interrupted else self.dst
        commit_temp(self.tmp, target)
        report.output = str(target)

    def abandon(self) -> None:
        try:
            self.sink.container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


def describe_backend() -> str:
    """PyAV and FFmpeg versions, and which of the named encoders this build has."""
    av = pyav()
    have = []
    for name in ("h264", "h265", "vp9", "av1", "ffv1"):
        try:
            encoder_name(name)
            have.append(name)
        except UsageError:
            have.append(f"{name} (missing)")
    return f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}; encoders: {', '.join(have)}"
