"""Which encoder and container an output gets: codec names, what each container holds, the ``auto``
codec, the encoder's time base and pixel format, checked before any work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import UsageError, VideoError
from .decode import pyav, reason

CODEC_ALIASES = {
    "h264": "libx264",
    "avc": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
#: encoders whose bitstream holds the pixel shape (sample aspect ratio)
SAR_IN_BITSTREAM = ("libx264", "libx265", "mpeg2video", "mpeg4")
QSCALE_CODECS = ("mpeg1video", "mpeg2video", "mpeg4")
#: encoders whose alpha travels beside the picture, as Matroska's BlockAdditional side data
ALPHA_IN_SIDE_DATA = ("libvpx", "libvpx-vp9")
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
#: FFmpeg's muxers of the MP4 / QuickTime family: a track's start is an edit list counted in the movie's
#: time scale
MOV_FAMILY = frozenset({"mov", "mp4", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"})
#: ISO 639-2 gives 20 languages two codes, bibliographic (B) and terminology (T): B -> T
ISO639_B_TO_T = {
    "alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "chi": "zho", "cze": "ces", "dut": "nld",
    "fre": "fra", "geo": "kat", "ger": "deu", "gre": "ell", "ice": "isl", "mac": "mkd", "mao": "mri",
    "may": "msa", "per": "fas", "rum": "ron", "slo": "slk", "tib": "bod", "wel": "cym",
}  # fmt: skip
_ISO639_T_TO_B = {t: b for b, t in ISO639_B_TO_T.items()}
#: QuickTime's MOV stores a track's language as a Macintosh language code, which FFmpeg finds by one of
#: the two forms (its table mixes them: "ger" but "fra"); the form it holds, of each pair it has
MOV_LANGUAGE_FORMS = frozenset(
    {"alb", "arm", "baq", "bur", "chi", "ces", "dut", "fra", "geo", "ger", "gre", "ice", "mac", "may", "per",
     "ron", "slk", "tib", "wel"}
)  # fmt: skip
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


#: what FFmpeg's MPEG muxers take (libavformat/mpegtsenc.c, mpegenc.c): they have no codec table to
#: ask, so PyAV lists only their defaults (MPEG-2 and MP2, not H.264 or AAC)
MPEG_MUXER_CODECS = {
    "mpegts": frozenset(
        "mpeg1video mpeg2video mpeg4 h264 hevc vvc cavs dirac vc1 av1 aac aac_latm mp2 mp3 ac3 eac3 dts truehd "
        "opus s302m dvb_subtitle dvb_teletext".split()
    ),
    "mpeg": frozenset("mpeg1video mpeg2video mpeg4 h264 mp2 mp3 ac3 dts pcm_s16be dvd_subtitle".split()),
}
MPEG_PROGRAM_STREAMS = ("mpeg", "vob", "dvd", "svcd", "vcd")
for _name in MPEG_PROGRAM_STREAMS[1:]:
    MPEG_MUXER_CODECS[_name] = MPEG_MUXER_CODECS["mpeg"]


def muxer_codecs(container) -> frozenset:
    """The codecs an open output container takes (empty: any)."""
    return frozenset(container.supported_codecs or ()) | MPEG_MUXER_CODECS.get(container.format.name, frozenset())


def muxer_takes(muxer: str, stream) -> bool:
    """Whether FFmpeg's ``muxer`` writes its header with a copy of ``stream`` in it: its codec list may
    name a codec it then refuses (Opus and FLAC in MOV, which only MP4 writes). Tried in memory."""
    import contextlib
    import io

    av = pyav()
    out = av.open(io.BytesIO(), "w", format=muxer)
    try:
        out.add_stream_from_template(stream)
        out.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(Exception):  # a header without packets: its trailer is not the question
            out.close()


def container_of(path: Path, container_format: str | None = None) -> tuple[str, bool, frozenset, str | None]:
    """The container FFmpeg writes for ``path`` (by its name, or ``container_format``): its name,
    whether it keeps codec headers out of band (global headers), the codecs it can hold (empty: any)
    and its own default video codec. Nothing is created."""
    av = pyav()
    try:
        with av.open(str(path), "w", format=container_format) as c:
            holds = muxer_codecs(c)
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


def codec_for(
    options: EncodeOptions,
    dst: Path,
    container_format: str | None = None,
    facts=None,
    hdr: bool = False,
    alpha: bool = False,
) -> EncodeOptions:
    """``options`` with ``auto`` made concrete for the output ``dst``: H.264 where its container holds
    it, else the container's own video codec (a .webm output gets VP9); for an ``hdr`` source, H.265
    first (it carries HDR10's mastering metadata); for a source with ``alpha``, VP9 in Matroska (which
    keeps its alpha, where H.264 has none). ``facts``: what :func:`container_of` says of ``dst``, when
    the caller has it already."""
    if options.codec != AUTO_CODEC:
        return options
    name, _, holds, default = facts or container_of(Path(dst), container_format)
    if name in MPEG_PROGRAM_STREAMS:  # H.264 in a program stream loses its frame rate for many readers
        return dataclasses.replace(options, codec="mpeg2video")
    if alpha and name == "matroska" and holds_encoder(holds, "libvpx-vp9"):
        return dataclasses.replace(options, codec="vp9")
    if hdr and holds_encoder(holds, "libx265"):
        return dataclasses.replace(options, codec="h265")
    codec = "h264" if holds_encoder(holds, "libx264") or not default else default
    return dataclasses.replace(options, codec=codec)


def _encoder_time_base(encoder: str, rate: Fraction, time_base: Fraction) -> Fraction:
    """The source's time base, or one frame for an encoder that takes only a list of frame rates
    (MPEG-1 and MPEG-2 video): frames are retimed into it."""
    listed = pyav().codec.Codec(encoder, "w").frame_rates
    if not listed:
        return time_base
    rates = [Fraction(r.numerator, r.denominator) for r in listed]
    best = min(rates, key=lambda r: abs(r - rate))
    if abs(best - rate) > rate / 1000:
        shown = ", ".join(f"{float(r):.3f}".rstrip("0").rstrip(".") for r in sorted(set(rates))[:16])
        raise UsageError(
            f"{encoder} takes only the frame rates {shown}...; this video runs at {float(rate):.3f} fps: choose --codec h264"
        )
    return 1 / best


def keep_track_starts(container, video_time_base: Fraction) -> None:
    """In an MP4 or MOV output, count the movie's time in the video track's own units.

    A track that starts after time 0 (video after its audio, or after an edit of the source) starts
    with an empty edit whose length FFmpeg counts in the movie's time scale, 1/1000 s by default,
    rounded down: every frame of such a video came out up to 1 ms early. In the track's time scale
    (the muxer's: the time base's denominator, doubled up to 10000 at least) the start is exact.
    Set before the header is written, for outputs with such a track only (elsewhere the durations stay
    counted in milliseconds, as the source's were); other containers are left as they are.
    """
    if container.format.name.split(",")[0] not in MOV_FAMILY:
        return
    scale = video_time_base.denominator
    while scale < 10000:
        scale *= 2
    container.container_options["movie_timescale"] = str(scale)


def language_tag(muxer: str, language: str) -> str:
    """``language`` as the ``muxer`` (FFmpeg's name) keeps it: MOV, in the form of the code its table holds."""
    if muxer != "mov":
        return language
    code = language.lower()
    other = ISO639_B_TO_T.get(code) or _ISO639_T_TO_B.get(code)
    return other if other in MOV_LANGUAGE_FORMS and code not in MOV_LANGUAGE_FORMS else language


def same_language(a: str | None, b: str | None) -> bool:
    """Whether two ISO 639-2 codes name one language (a B code and its T code do)."""

    def norm(code: str | None) -> str:
        code = (code or "und").lower()
        return ISO639_B_TO_T.get(code, code)

    return norm(a) == norm(b)
