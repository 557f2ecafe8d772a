"""Video in, video (or frames) out, through PyAV's bundled FFmpeg.

Frames stream from a reader thread (demux + decode) through ``restore`` on the calling thread to a
writer thread (encode + mux), with short queues between them, so memory stays bounded for any
length. The output keeps the input's frame count and timestamps (the encoder works in the input
stream's time base, so variable frame rates survive), its rotation (display matrix), size (odd
sizes get a 4:4:4 pixel format instead of a crop) and its audio and subtitle streams: copied
packet for packet where the output container takes the codec, audio re-encoded otherwise, with a
note. Frames are processed as stored; the rotation is metadata and is carried over.

The video is written under a temporary name and renamed when complete. A damaged input gives the
frames that decode, a valid output and the problems in the report. An interrupt finalises what
was written as ``NAME.partial.EXT`` (a valid, shorter file whose metadata says so).
"""

from __future__ import annotations

import functools
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import AlgnetError, UsageError
from .fileio import _umask, make_temp, unreadable_reason
from .interrupts import shielded

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
)
CODEC_ALIASES = {
    "h264": "libx264",
    "avc": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
DEFAULT_CODEC = "h264"
DEFAULT_CRF = 18
QUEUE_DEPTH = 4


class VideoError(AlgnetError):
    """A video that cannot be opened, has no video stream, or cannot be written as asked."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@functools.lru_cache(maxsize=1)
def _av():
    """PyAV, imported on first use, with FFmpeg's log level set once."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise UsageError("video support needs PyAV: pip install av") from e
    av.logging.set_level(av.logging.ERROR)  # captured while reading and reported per file (see _Source.items)
    return av


@dataclass
class EncodeOptions:
    codec: str = DEFAULT_CODEC
    crf: int | None = DEFAULT_CRF
    pix_fmt: str | None = None  # None: the source's when the encoder takes it and the size allows, else yuv420p
    fps: float | None = None  # frame sequences only


@dataclass
class VideoReport:
    input: str
    output: str
    status: str = "done"  # done | partial (damaged input or interrupted) | failed | skipped
    frames: int = 0
    frames_expected: int | None = None
    fps: float | None = None
    size: tuple[int, int] | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    rotation: int = 0
    streams: list[str] = field(default_factory=list)  # what happened to each other stream
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v not in (None, [])}
        d["seconds"] = round(self.seconds, 3)
        if self.size:
            d["size"] = list(self.size)
        return d


def encoder_name(codec: str) -> str:
    """The FFmpeg encoder for a user's codec name (h264 -> libx264), checked to exist."""
    av = _av()
    name = CODEC_ALIASES.get(codec.lower(), codec)
    try:
        c = av.codec.Codec(name, "w")
    except Exception:
        raise UsageError(f"--codec {codec}: no such video encoder in this FFmpeg build") from None
    if c.type != "video":
        raise UsageError(f"--codec {codec}: {name} is not a video encoder")
    return name


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """(horizontal, vertical) chroma subsampling of a pixel format."""
    av = _av()
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    comps = fmt.components
    if len(comps) < 3 or fmt.is_rgb:
        return False, False
    return comps[1].width < 16, comps[1].height < 16


def choose_pix_fmt(
    encoder: str, requested: str | None, source: str | None, width: int, height: int
) -> tuple[str, str | None]:
    """The output pixel format and a note when it is not the obvious one."""
    av = _av()
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
    }.get(source)
    if rgb_like is not None:  # frames from images: exact RGB where the encoder has it (ffv1), else the usual
        for fmt in rgb_like:
            if fmt in supported and fits(fmt):
                return fmt, None
        source = None
    for fmt in (source, "yuv420p", "yuv444p", "bgr0", "gbrp"):
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
    fmt = next((f for f in supported if fits(f)), None)
    if fmt is None:
        raise UsageError(f"{encoder} cannot encode a {width}x{height} video")
    return fmt, f"pixel format {fmt}"


def _high_bit(pix_fmt: str | None) -> bool:
    if not pix_fmt:
        return False
    av = _av()
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt, 16, 16).components) > 8
    except Exception:
        return False


@dataclass
class _Frame:
    index: int
    pixels: np.ndarray
    pts: int | None
    time_base: Fraction | None
    duration: int | None = None


_END = object()


class _Pipe:
    """A bounded queue whose consumer can be told to stop; errors travel to the other side."""

    def __init__(self, depth: int = QUEUE_DEPTH):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        while True:
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set() and self.q.empty():
                    return _END


def partial_path(dst: Path) -> Path:
    return dst.with_name(dst.stem + ".partial" + dst.suffix)


class _Source:
    """Decoded frames and copyable packets of one video file, in file order."""

    def __init__(self, path: Path, report: VideoReport, copy_others: bool = True):
        av = _av()
        self.path = path
        self.report = report
        reason = unreadable_reason(path)
        if reason is not None:
            raise VideoError(path, reason)
        try:
            self.container = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as e:
            raise VideoError(path, f"cannot open as a video ({_reason(e)})") from None
        self.video = _main_video_stream(self.container)
        if self.video is None:
            self.container.close()
            raise VideoError(path, "no video stream")
        self.video.thread_type = "AUTO"
        cc = self.video.codec_context
        self.width, self.height = cc.width, cc.height
        self.pix_fmt = cc.format.name if cc.format else None
        self.high_bit = _high_bit(self.pix_fmt)
        self.rgb = "rgb48le" if self.high_bit else "rgb24"
        self.rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        self.time_base = self.video.time_base
        self.rotation = _first_frame_rotation(path)
        self.frames_expected = self.video.frames or None
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

    def items(self, decode_audio: set[int]) -> Iterable:
        """Yield _Frame objects for video frames and packets (or decoded frames) of the other streams.

        FFmpeg's error messages while reading (a truncated file, damaged packets) become problems.
        """
        av = _av()
        with av.logging.Capture() as logs:
            try:
                yield from self._items(decode_audio)
            finally:
                self._problems_from_log(logs)

    def _problems_from_log(self, logs) -> None:
        groups: dict[str, int] = {}
        for level, name, message in logs:
            if level <= 16:  # av.logging.ERROR and worse
                key = re.sub(r"-?\d+", "N", f"{name or 'ffmpeg'}: {message.strip()}")
                groups[key] = groups.get(key, 0) + 1
        for key, count in groups.items():
            self._problem(f"{key}" + (f" ({count} times)" if count > 1 else ""))

    def _items(self, decode_audio: set[int]) -> Iterable:
        av = _av()
        index = 0
        streams = [self.video, *self.others]
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
                            self._problem(f"audio packet at {_when(packet)}: {_reason(e)}")
                    else:
                        yield ("packet", packet.stream.index, packet)
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    self._problem(f"video packet at {_when(packet)} did not decode ({_reason(e)})")
                    continue
                for f in frames:
                    index += 1
                    if f.is_corrupt:
                        self._problem(f"frame {index} ({_when(packet)}) decoded with errors, concealed by the decoder")
                    yield ("frame", _Frame(index, f.to_ndarray(format=self.rgb), f.pts, f.time_base, f.duration), None)
            for s in decode_audio:  # flush audio decoders
                stream = self.container.streams[s]
                try:
                    for f in stream.codec_context.decode(None):
                        yield ("audio", s, f)
                except av.FFmpegError:
                    pass
        except av.FFmpegError as e:
            self._problem(f"reading stopped after frame {index} ({_reason(e)})")

    def _problem(self, text: str) -> None:
        self.report.problems.append(text)


def _main_video_stream(container):
    """The first video stream that is not a cover picture; None when there is none."""
    av = _av()
    cover = getattr(av.stream.Disposition, "attached_pic", 0)
    streams = list(container.streams.video)
    for s in streams:
        if not (int(s.disposition) & int(cover)):
            return s
    return streams[0] if streams else None


def _first_frame_rotation(path: Path) -> int:
    """Display rotation in degrees (FFmpeg attaches the stream's display matrix to each frame)."""
    av = _av()
    try:
        with av.logging.Capture(), av.open(str(path)) as c:
            for f in c.decode(_main_video_stream(c)):
                return int(f.rotation or 0)
    except (av.FFmpegError, OSError, StopIteration):
        pass
    return 0


def _when(packet) -> str:
    try:
        return f"{float(packet.pts * packet.time_base):.3f} s"
    except Exception:
        return "an unknown time"


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(": '")[0].strip() or type(e).__name__


class _Sink:
    """An output container: one encoded video stream, copied or re-encoded other streams."""

    def __init__(
        self,
        path: Path,
        container_format: str | None,
        encoder: str,
        pix_fmt: str,
        crf: int | None,
        width: int,
        height: int,
        rate: Fraction,
        time_base: Fraction,
        rotation: int,
        metadata: dict,
        others: list,
        report: VideoReport,
    ):
        av = _av()
        self.report = report
        try:
            self.container = av.open(str(path), "w", format=container_format)
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(path, f"cannot write this container ({_reason(e)})") from None
        supported = self.container.supported_codecs
        enc_codec = av.codec.Codec(encoder, "w")
        if supported and enc_codec.name not in supported and encoder not in supported:
            fmt = self.container.format.name
            self.container.close()
            raise UsageError(f"{path.name}: the {fmt} container cannot hold {encoder} video; choose another --codec")
        options = {"crf": str(crf)} if crf is not None and encoder in CRF_CODECS else {}
        if encoder == "libvpx-vp9" and options:
            options["b"] = "0"
        self.video = self.container.add_stream(encoder, rate=rate, options=options)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, pix_fmt
        self.video.time_base = time_base
        self.video.codec_context.time_base = time_base
        if rotation:
            try:
                self.video.set_display_rotation(rotation)
            except Exception:
                report.problems.append("could not carry the rotation over")
        for k, v in metadata.items():
            if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                self.container.metadata[k] = v
        self.map: dict[int, object] = {}
        self.decode_audio: set[int] = set()
        for s in others:
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
                out = self.container.add_stream(target, rate=s.codec_context.sample_rate)
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

    def frame(self, f: _Frame, rgb: str) -> None:
        av = _av()
        vf = av.VideoFrame.from_ndarray(f.pixels, format=rgb)
        vf.pts = f.pts
        if f.time_base is not None:
            vf.time_base = f.time_base
        if f.duration:
            vf.duration = f.duration
            self.durations[f.pts] = f.duration
        self._mux_video(self.video.encode(vf))

    def _mux_video(self, packets) -> None:
        for p in packets:
            # the input's frame durations, so the last frame (and the stream) lasts as long as before
            d = self.durations.pop(p.pts, None)
            if d:
                p.duration = d
            self.container.mux(p)

    def packet(self, stream_index: int, packet) -> None:
        packet.stream = self.map[stream_index]
        self.container.mux(packet)

    def audio(self, stream_index: int, frame) -> None:
        frame.pts = None
        for p in self.map[stream_index].encode(frame):
            self.container.mux(p)

    def close(self, comment: str | None = None) -> None:
        try:
            self._mux_video(self.video.encode(None))
            for idx in self.decode_audio:
                for p in self.map[idx].encode(None):
                    self.container.mux(p)
        finally:
            self.container.close()


def process_video(
    src: str | Path,
    dst: str | Path | None,
    restore: Callable[[np.ndarray], np.ndarray],
    options: EncodeOptions = EncodeOptions(),
    *,
    container_format: str | None = None,
    frames_out: str | Path | None = None,
    on_frame: Callable[[VideoReport], None] | None = None,
    on_start: Callable[[VideoReport], None] | None = None,
    restore_many: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    batch: int | Callable[[int, int], int] = 1,
) -> VideoReport:
    """Deblur every frame of ``src`` into the video ``dst`` (or PNG frames under ``frames_out``).

    ``restore`` maps an (H, W, 3) uint8/uint16 frame to one of the same shape and dtype;
    ``restore_many`` (optional) does the same for a list of same-size frames at once, used for up to
    ``batch`` frames at a time (a number, or a function of the frame height and width).
    Returns the report; raises VideoError/UsageError for a file that cannot be processed at all.
    KeyboardInterrupt is re-raised after the partial output has been finalised.
    """
    src = Path(src)
    report = VideoReport(str(src), str(frames_out if frames_out is not None else dst))
    t0 = time.perf_counter()
    source = _Source(src, report, copy_others=frames_out is None)
    try:
        report.fps = float(source.rate)
        report.size = (source.width, source.height)
        report.frames_expected = source.frames_expected
        report.rotation = source.rotation
        if on_start:
            on_start(report)
        if frames_out is not None:
            writer = _FrameFolderWriter(Path(frames_out), source.high_bit)
        else:
            encoder = encoder_name(options.codec)
            pix_fmt, note = choose_pix_fmt(encoder, options.pix_fmt, source.pix_fmt, source.width, source.height)
            if note:
                report.streams.append(f"video: {note}")
            report.codec, report.pix_fmt = encoder, pix_fmt
            writer = _VideoWriter(
                Path(dst),
                lambda tmp: _Sink(
                    tmp,
                    container_format,
                    encoder,
                    pix_fmt,
                    options.crf,
                    source.width,
                    source.height,
                    source.rate,
                    source.time_base,
                    source.rotation,
                    source.metadata,
                    source.others,
                    report,
                ),
            )
        n = batch(source.height, source.width) if callable(batch) else batch
        _run(source, writer, restore, report, on_frame, restore_many, max(1, n))
    finally:
        source.close()
        report.seconds = time.perf_counter() - t0
    if report.problems and report.status == "done":
        report.status = "partial"
    return report


def process_sequence(
    frames: list[Path],
    dst: str | Path,
    restore: Callable[[np.ndarray], np.ndarray],
    options: EncodeOptions = EncodeOptions(),
    *,
    container_format: str | None = None,
    on_frame: Callable[[VideoReport], None] | None = None,
) -> VideoReport:
    """Deblur a list of still frames (already in order) into one video at ``options.fps``."""
    from .images import read_image

    if not frames:
        raise UsageError("no frames to write as a video")
    fps = Fraction(options.fps or 25).limit_denominator(1001 * 1000)
    report = VideoReport(f"{frames[0].parent} ({len(frames)} frames)", str(dst), fps=float(fps))
    report.frames_expected = len(frames)
    t0 = time.perf_counter()
    first = read_image(frames[0])
    h, w = first.shape[:2]
    report.size = (w, h)
    high = first.dtype == np.uint16
    encoder = encoder_name(options.codec)
    pix_fmt, note = choose_pix_fmt(encoder, options.pix_fmt, "rgb48le" if high else "rgb24", w, h)
    if note:
        report.streams.append(f"video: {note}")
    report.codec, report.pix_fmt = encoder, pix_fmt
    time_base = 1 / fps

    class Seq:
        rgb = "rgb48le" if high else "rgb24"

        def items(self, decode_audio):
            for i, path in enumerate(frames, start=1):
                try:
                    img = first if i == 1 else read_image(path)
                except AlgnetError as e:
                    report.problems.append(str(e))
                    continue
                img = _as_rgb(img, high)
                if img.shape[:2] != (h, w):
                    report.problems.append(
                        f"{path}: {img.shape[1]}x{img.shape[0]}, not {w}x{h} like the first frame; left out"
                    )
                    continue
                yield ("frame", _Frame(i, img, i - 1, time_base, 1), None)

    writer = _VideoWriter(
        Path(dst),
        lambda tmp: _Sink(
            tmp, container_format, encoder, pix_fmt, options.crf, w, h, fps, time_base, 0.0, {}, [], report
        ),
    )
    try:
        _run(Seq(), writer, restore, report, on_frame)
    finally:
        report.seconds = time.perf_counter() - t0
    if report.problems and report.status == "done":
        report.status = "partial"
    return report


def _as_rgb(img: np.ndarray, high: bool) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    # grey (with or without alpha) -> three equal channels; colour drops alpha
    img = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] <= 2 else img[..., :3]
    if high and img.dtype == np.uint8:
        img = img.astype(np.uint16) * 257
    elif not high and img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.ascontiguousarray(img)


class _VideoWriter:
    """Runs a _Sink on its own thread, from a temporary file renamed into place at the end."""

    def __init__(self, dst: Path, make_sink: Callable[[Path], _Sink]):
        self.dst = dst
        self.tmp = make_temp(dst)
        try:
            self.sink = make_sink(self.tmp)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.decode_audio = self.sink.decode_audio

    def handle(self, kind: str, a, b, rgb: str) -> None:
        if kind == "frame":
            self.sink.frame(a, rgb)
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
        os.chmod(self.tmp, 0o666 & ~_umask())
        target = partial_path(self.dst) if interrupted else self.dst
        os.replace(self.tmp, target)
        report.output = str(target)

    def abandon(self) -> None:
        try:
            self.sink.container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


class _FrameFolderWriter:
    """Numbered PNGs (16-bit for sources above 8 bit), each written atomically."""

    decode_audio: set[int] = set()

    def __init__(self, folder: Path, high_bit: bool):
        self.folder = folder
        self.high_bit = high_bit
        folder.mkdir(parents=True, exist_ok=True)

    def handle(self, kind: str, a, b, rgb: str) -> None:
        from .images import write_image

        if kind == "frame":
            write_image(self.folder / f"{a.index:06d}.png", a.pixels)

    def finish(self, report: VideoReport, interrupted: bool) -> None:
        report.output = str(self.folder)

    def abandon(self) -> None:
        pass


def _run(source, writer, restore, report: VideoReport, on_frame, restore_many=None, batch: int = 1) -> None:
    """Reader thread -> restore here (``batch`` same-size frames at a time) -> writer thread, in file order."""
    if restore_many is None:
        batch = 1
    rgb = source.rgb
    inbox, outbox = _Pipe(), _Pipe()

    def read() -> None:
        try:
            for item in source.items(writer.decode_audio):
                if not inbox.put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            inbox.error = e
        finally:
            inbox.put(_END)

    def write() -> None:
        try:
            with _av().logging.Capture():  # encoder chatter; real failures raise
                while True:
                    item = outbox.get()
                    if item is _END:
                        return
                    writer.handle(*item, rgb)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outbox.error = e
            outbox.stop.set()

    reader = threading.Thread(target=read, name="algnet-video-read", daemon=True)
    wthread = threading.Thread(target=write, name="algnet-video-write", daemon=True)
    reader.start()
    wthread.start()
    interrupted = False
    items: list = []  # in file order, up to `batch` frames and the packets between them
    frames: list[_Frame] = []

    def flush() -> bool:
        if frames:
            pixels = [f.pixels for f in frames]
            outs = restore_many(pixels) if len(frames) > 1 else [restore(pixels[0])]
            for f, o in zip(frames, outs):
                f.pixels = o
        for item in items:
            if not outbox.put(item):
                return False
            if item[0] == "frame":
                report.frames += 1
                if on_frame:
                    on_frame(report)
        items.clear()
        frames.clear()
        return True

    try:
        while True:
            item = inbox.get()
            if item is _END:
                flush()
                break
            if item[0] == "frame" and frames and item[1].pixels.shape != frames[0].pixels.shape:
                if not flush():
                    break
            items.append(item)
            if item[0] == "frame":
                frames.append(item[1])
                if len(frames) >= batch and not flush():
                    break
        if inbox.error is not None:
            raise inbox.error
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        with shielded():
            inbox.stop.set()
            outbox.stop.set()
            wthread.join()
            reader.join(timeout=5)
            writer.abandon()
        raise
    finally:
        inbox.stop.set()
    with shielded():  # a second Ctrl-C must not cut the file being finalised in half
        outbox.put(_END)
        outbox.stop.set()
        wthread.join()
        reader.join(timeout=5)
        if outbox.error is not None:
            writer.abandon()
            raise VideoError(report.output, f"writing failed ({_reason(outbox.error)})")
        writer.finish(report, interrupted)
    if interrupted:
        report.status = "partial"
        report.problems.append(f"interrupted after {report.frames} frames")
        raise KeyboardInterrupt


def probe(path: str | Path) -> dict:
    """Frame count (decoded), rate, duration, size, rotation and streams of a video file."""
    av = _av()
    with av.open(str(path)) as c:
        v = _main_video_stream(c)
        pts = [f.pts for f in c.decode(v)]
        return {
            "frames": len(pts),
            "fps": float(v.average_rate) if v.average_rate else None,
            "time_base": v.time_base,
            "pts": pts,
            "duration": float(c.duration / 1_000_000) if c.duration else None,
            "size": (v.codec_context.width, v.codec_context.height),
            "rotation": _first_frame_rotation(Path(path)),
            "streams": [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams],
        }


def describe_backend() -> str:
    """PyAV and FFmpeg versions, and which of the named encoders this build has."""
    av = _av()
    have = []
    for name in ("h264", "h265", "vp9", "av1", "ffv1"):
        try:
            encoder_name(name)
            have.append(name)
        except UsageError:
            have.append(f"{name} (missing)")
    return f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}; encoders: {', '.join(have)}"


def probe_header(path: str | Path) -> dict:
    """Size, rate and frame count from the container's header, without decoding."""
    reason = unreadable_reason(Path(path))
    if reason is not None:
        raise VideoError(path, reason)
    av = _av()
    with av.open(str(path)) as c:
        v = _main_video_stream(c)
        return {
            "size": (v.codec_context.width, v.codec_context.height),
            "fps": float(v.average_rate or v.guessed_rate or 0),
            "frames": v.frames or None,
        }
