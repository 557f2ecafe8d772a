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

import numpy as np

from ..errors import UsageError, VideoError
from ..fileio import commit_temp, make_temp
from .colour import FIELD_ORDERS, Colour, Mastering, from_rgb, output_colour, tag
from .containers import (
    CRF_CODECS,
    QSCALE_CODECS,
    SAR_IN_BITSTREAM,
    EncodeOptions,
    _encoder_time_base,
    choose_pix_fmt,
    encoder_name,
    holds_encoder,
    keep_track_starts,
    language_tag,
    muxer_codecs,
    muxer_takes,
    same_language,
)
from .decode import Frame, VideoReport, has_alpha, high_bit, pyav, reason


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
    video_metadata: tuple = ()  # (key, value) tags of the source's video stream (language, title)
    chapters: tuple = ()  # the source's chapters (PyAV's dicts), on the output's timeline
    sar: Fraction | None = None  # the source's pixel shape (sample aspect ratio); None or 1: square
    colour: Colour = Colour()  # how the frames are coded and tagged (see :mod:`.colour`)
    mastering: Mastering | None = None  # HDR10 static metadata to write, where the encoder takes it
    field_order: int = 0  # AVFieldOrder of the source: 2-5 interlaced, kept where the encoder can
    late_start: bool = False  # a stream of the source starts after the others (see keep_track_starts)


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
    if has_alpha(source_pix_fmt) and not has_alpha(pix_fmt):
        report.streams.append(
            f"video: transparency (alpha) dropped: {encoder} into this file takes no alpha (vp9 in .webm or .mkv keeps it)"
        )
    source_colour = timing.pop("colour", Colour())
    colour = output_colour(source_colour, pix_fmt)
    for line in _colour_notes(encoder, pix_fmt, source_colour, timing.get("mastering"), timing.get("field_order", 0)):
        report.streams.append(f"video: {line}")
    return OutputSpec(encoder, pix_fmt, options.crf, width, height, colour=colour, **timing)


def _colour_notes(encoder: str, pix_fmt: str, colour: Colour, mastering: Mastering | None, field_order: int):
    """What of the source's colour, HDR metadata and field order this output cannot keep."""
    note = colour.note()
    if note:
        yield note
    if colour.hdr and not high_bit(pix_fmt):
        yield f"HDR video written at 8 bits ({encoder} takes no 10-bit format here): banding may show"
    if mastering is not None and encoder != "libx265":
        yield f"HDR10 mastering metadata ({mastering.describe()}) not kept: {encoder} cannot carry it; --codec h265 does"
    if field_order in FIELD_ORDERS and encoder != "libx264":
        yield f"interlaced ({FIELD_ORDERS[field_order]}) source written as progressive frames ({encoder} keeps no field order here; --codec h264 does)"


class Sink:
    """An output container: one encoded video stream, copied or re-encoded other streams."""

    def __init__(self, path: Path, spec: OutputSpec, report: VideoReport, template=None):
        """``template``: a video stream whose encoded packets will be copied in (:meth:`video_packet`)
        instead of frames encoded here; the encoder fields of ``spec`` are then unused."""
        av = pyav()
        self.report = report
        self.rgb = spec.rgb
        self.pix_fmt, self.colour = spec.pix_fmt, spec.colour
        self.alpha = has_alpha(spec.pix_fmt)
        try:
            self.container = av.open(str(path), "w", format=spec.container_format)
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(path, f"cannot write this container ({reason(e)})") from None
        supported = muxer_codecs(self.container)
        self.encoding = template is None
        if template is not None:
            self.video = self.container.add_stream_from_template(template)
            self.video.time_base = spec.time_base
            self.video.codec_context.framerate = spec.rate  # the source's, as an encoder stream gets
            if str(template.metadata.get("alpha_mode", "")) == "1":  # VP8/VP9 segments with their alpha
                fmt = template.codec_context.format
                if fmt is not None and fmt.name.startswith("yuv"):  # Matroska's muxer marks the track by it
                    self.video.codec_context.pix_fmt = "yuva" + fmt.name[3:]
        else:
            self.video = self._encoder_stream(path, spec, supported)
        if spec.late_start:
            keep_track_starts(self.container, Fraction(self.video.time_base))
        if spec.rotation:
            try:
                self.video.set_display_rotation(spec.rotation)
            except Exception:
                report.problems.append("could not carry the rotation over")
        for k, v in spec.metadata:
            if k.lower() not in _OWN_CONTAINER_TAGS:
                self.container.metadata[k] = v
        _copy_tags(spec.video_metadata, self.video)
        if spec.chapters:
            try:
                self.container.set_chapters(list(spec.chapters))
            except Exception as e:
                report.streams.append(f"chapters: not kept ({reason(e)})")
        self.map: dict[int, Any] = {}
        self.decode_audio: set[int] = set()
        for s in spec.others:
            name = s.codec_context.name if s.codec_context else None
            if name and (not supported or name in supported) and muxer_takes(self.container.format.name, s):
                self.map[s.index] = self.container.add_stream_from_template(s)
                _copy_tags(s.metadata.items(), self.map[s.index], s)
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
                _copy_tags(s.metadata.items(), out, s)
                self.map[s.index] = out
                self.decode_audio.add(s.index)
                report.streams.append(
                    f"audio #{s.index} ({name}): re-encoded to {target}, the {self.container.format.name} container cannot hold {name}"
                )
            else:
                report.streams.append(
                    f"{s.type} #{s.index} ({name}): dropped, the {self.container.format.name} container cannot hold it"
                )
        self.path = path
        self.languages = _tagged_languages(spec, self.video, self.map)
        self.durations: dict[int, int] = {}
        self.early: set[int] = set()  # copied streams seen with times before 0
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
        if encoder == "libx265":  # x265 prints its own lines on stderr
            params = ["log-level=error"]  # its warnings are about its own tuning (lookahead, wpp), not the file
            if spec.mastering is not None:
                params += spec.mastering.x265_params()
            options["x265-params"] = ":".join(params)
        if encoder == "libx264" and spec.field_order in FIELD_ORDERS:  # coded as fields, in the source's order
            options["flags"] = "+ildct+ilme"
            options["x264-params"] = "tff=1" if FIELD_ORDERS[spec.field_order][0] == "t" else "bff=1"
        time_base = _encoder_time_base(encoder, spec.rate, spec.time_base)
        video = self.container.add_stream(encoder, rate=spec.rate, options=options)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, spec.pix_fmt
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if encoder in QSCALE_CODECS and spec.crf is not None:  # no CRF: a fixed quantiser instead of 200 kb/s
            video.codec_context.qscale = True
            video.codec_context.global_quality = 2 * 118  # FF_QP2LAMBDA: -q:v 2, near transparent
        if spec.sar and spec.sar != 1:  # non-square pixels: displayed at the source's shape
            video.codec_context.sample_aspect_ratio = spec.sar
            if self.container.format.name in ("matroska", "webm") and encoder not in SAR_IN_BITSTREAM:
                # Matroska takes the shape from the stream, which PyAV cannot set; MP4 and MOV take the codec's
                self.report.streams.append(
                    f"video: pixel shape {spec.sar.numerator}:{spec.sar.denominator} not kept: {encoder} in "
                    f"{self.container.format.name} cannot carry it here (h264 in .mkv, or a .mp4/.mov file, keeps it)"
                )
        tag(video.codec_context, spec.colour)
        if encoder == "libx264" and spec.field_order in FIELD_ORDERS:
            video.codec_context.field_order = spec.field_order
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
        pixels, rgb = f.pixels, self.rgb
        if f.alpha is not None and self.alpha:  # the source's transparency, untouched by the model
            pixels, rgb = np.dstack([pixels, f.alpha]), ("rgba64le" if rgb == "rgb48le" else "rgba")
        vf = from_rgb(pixels, rgb, self.pix_fmt, self.colour)
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
        if packet.pts is not None and packet.pts < 0 and stream_index not in self.early:
            self.early.add(stream_index)
            fmt = self.container.format.name
            if fmt in ("matroska", "webm"):  # the muxer shifts every stream to start at 0 or later
                ms = float(-packet.pts * packet.time_base) * 1000
                self.report.streams.append(
                    f"{packet.stream.type} #{stream_index}: starts {ms:.1f} ms before time 0 (its encoder delay); "
                    f"{fmt} holds no times before 0, so every stream of the output starts {ms:.1f} ms later, in sync"
                )
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
        self._check_languages()

    def _check_languages(self) -> None:
        """Each stream's language read back from the written file: one its container could not keep is
        named (QuickTime's MOV knows only the languages of its own table)."""
        if not self.languages:
            return
        try:
            with pyav().open(str(self.path)) as written:
                found = {st.index: st.metadata.get("language") for st in written.streams}
        except Exception:  # noqa: BLE001 - a file that does not read back is the next check's finding
            return
        fmt = self.container.format.name
        for label, index, language in self.languages:
            if not same_language(found.get(index), language):
                self.report.streams.append(
                    f"{label}: language {language} not kept, the {fmt} container reads it as {found.get(index) or 'und'}"
                )


def _tagged_languages(spec: OutputSpec, video, streams: dict) -> list[tuple[str, int, str]]:
    """(what the stream is, its index in the output, the source's language) for every output stream
    whose source is tagged with a language: what :meth:`Sink._check_languages` reads back."""
    found = [
        (f"{s.type} #{s.index}", streams[s.index].index, s.metadata.get("language"))
        for s in spec.others
        if s.index in streams and s.metadata.get("language")
    ]
    video_language = dict((k.lower(), v) for k, v in spec.video_metadata).get("language")
    if video_language:
        found.append(("video", video.index, video_language))
    return found


#: container tags that describe the old file's muxer, not the video: not carried over
_OWN_CONTAINER_TAGS = ("encoder", "major_brand", "minor_version", "compatible_brands")
#: stream tags that the muxer writes itself, or that describe the old encoding
_OWN_TAGS = {"duration", "encoder", "handler_name", "vendor_id", "creation_time", "_statistics_tags", "alpha_mode"}


def _copy_tags(tags, stream, source=None) -> None:
    """A source stream's tags (language, title...) and disposition (default, forced...) onto its output
    stream; the language as the output's container keeps it."""
    for k, v in tags:
        if k.lower() == "language":
            v = language_tag(stream.container.format.name, v)
        if k.lower() not in _OWN_TAGS and not k.upper().startswith(("NUMBER_OF_", "BPS", "_STATISTICS")):
            stream.metadata[k] = v
    if source is not None:
        try:
            stream.disposition = source.disposition
        except Exception:  # an older PyAV: the muxer's default
            pass


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
        try:
            self.sink.close()
            if interrupted and report.frames:
                # containers write their tags in the header (Matroska, WebM): the partial file is copied,
                # stream for stream, into one whose header says it is partial
                self._retag(f"partial: the first {report.frames} frames, interrupted")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        if report.frames == 0:
            self.tmp.unlink(missing_ok=True)
            return
        target = partial_path(self.dst) if interrupted else self.dst
        commit_temp(self.tmp, target)
        report.output = str(target)

    def _retag(self, comment: str) -> None:
        """Rewrite the finished temporary with ``comment`` in its container tags, set before its header."""
        av = pyav()
        tagged = make_temp(self.dst)
        try:
            with av.open(str(self.tmp)) as src, av.open(str(tagged), "w", format=src.format.name.split(",")[0]) as out:
                for k, v in src.metadata.items():
                    if k.lower() not in _OWN_CONTAINER_TAGS:
                        out.metadata[k] = v
                out.metadata["comment"] = comment
                streams = {}
                for st in src.streams:
                    if st.type == "data":  # MP4's chapter track: written again from the chapters
                        continue
                    streams[st.index] = out.add_stream_from_template(st)
                    _copy_tags(st.metadata.items(), streams[st.index], st)
                if any((st.start_time or 0) > 0 for st in src.streams if st.type in ("video", "audio")):
                    keep_track_starts(out, Fraction(src.streams.video[0].time_base))
                if src.chapters():
                    out.set_chapters(src.chapters())
                for packet in src.demux(*[src.streams[i] for i in streams]):
                    if packet.dts is None and packet.size == 0:  # the demuxer's flush packets
                        continue
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
            tagged.replace(self.tmp)
        finally:
            tagged.unlink(missing_ok=True)

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
