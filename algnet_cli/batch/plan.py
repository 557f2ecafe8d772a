"""Planning a run: the request, inputs mapped to outputs, collisions refused before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImageWriteError, UsageError
from ..fileio import make_temp, stale_temps
from ..images import FORMATS, is_image_path
from ..video import OUTPUT_CONTAINERS, EncodeOptions, is_video_path
from .discover import discover, identity


@dataclass(frozen=True)
class OutputOptions:
    """Where and how outputs are written.

    output: a folder, or a file name for a single input (None: only with --frames-out); folder: the
    user wrote -o with a trailing slash, so it is a folder whatever its suffix. fmt: 'keep' or a
    key of ``images.FORMATS``. max_pixels: the decoding limit (None: half the memory available).
    """

    output: Path | None = None
    folder: bool = False
    fmt: str = "keep"
    quality: int = 95
    suffix: str = ""
    skip_existing: bool = True
    max_pixels: int | None = None


@dataclass(frozen=True)
class VideoOptions:
    """How videos are written. container: the output container (None: the input's); frames_out:
    write each video's frames as PNGs under this folder instead; to_video: encode the input images
    as the frames of this video."""

    encode: EncodeOptions = EncodeOptions()
    container: str | None = None
    frames_out: Path | None = None
    to_video: Path | None = None


@dataclass(frozen=True)
class Request:
    """One ``algnet deblur`` job, as the user asked for it (built once, at the edge)."""

    inputs: tuple[str, ...]
    recursive: bool = False
    output: OutputOptions = OutputOptions()
    video: VideoOptions = VideoOptions()
    gt: Path | None = None


@dataclass(frozen=True)
class Job:
    """One input and where its output goes. kind: image, video, or frames (a video's frames as PNGs
    in the folder ``dst``)."""

    src: Path
    dst: Path
    kind: str = "image"

    def output_exists(self) -> bool:
        if self.kind == "frames":
            return self.dst.is_dir() and any(self.dst.iterdir())
        return self.dst.exists()


@dataclass
class Plan:
    """What a request will do: image and video jobs (or the frames of one --to-video video), the
    files found that are neither, and where the run record goes."""

    request: Request
    images: list[Job] = field(default_factory=list)
    videos: list[Job] = field(default_factory=list)
    sequence: list[Path] = field(default_factory=list)  # --to-video frames, in order
    not_images: list[str] = field(default_factory=list)
    record_dir: Path | None = None

    @property
    def jobs(self) -> list[Job]:
        return self.images + self.videos


def plan(request: Request) -> Plan:
    """Discover the inputs and map them to outputs; every usage error is raised here, before any work."""
    out, vid = request.output, request.video
    if out.fmt != "keep" and out.fmt not in FORMATS:
        raise UsageError(f"unknown --format {out.fmt!r}; use keep, {', '.join(FORMATS)}")
    if vid.container is not None and "." + vid.container.lower().lstrip(".") not in OUTPUT_CONTAINERS:
        raise UsageError(f"unknown --video-format {vid.container!r}; use {', '.join(v[1:] for v in OUTPUT_CONTAINERS)}")
    found, not_images = discover(list(request.inputs), request.recursive, exclude=out.output)
    if not found:
        raise UsageError("no input images or videos found")
    videos = [(s, r) for s, r in found if is_video_path(s)]
    images = [(s, r) for s, r in found if not is_video_path(s)]
    result = Plan(request, not_images=not_images)
    if vid.to_video is not None:
        _check_sequence(request, videos)
        result.sequence, result.record_dir = [s for s, _ in images], vid.to_video.parent
        return result
    if vid.encode.fps is not None:
        raise UsageError("--fps only applies with --to-video")
    if out.output is None and (images or vid.frames_out is None):
        raise UsageError("missing -o/--output (an output folder, or a file name for a single input)")
    single = len(found) == 1 and not out.folder and out.output is not None and not out.output.is_dir()
    single = single and (is_image_path(out.output) if images else is_video_path(out.output))
    if not single and out.output is not None and out.output.exists() and not out.output.is_dir():
        raise UsageError(f"{out.output}: is a file; with several inputs -o names a folder")
    result.images = [_image_job(s, r, out, single) for s, r in images]
    result.videos = [_video_job(s, r, out, vid, single) for s, r in videos]
    _refuse_collisions(result.jobs)
    result.record_dir = out.output.parent if single else (out.output or vid.frames_out)
    return result


def _check_sequence(request: Request, videos: list) -> None:
    to_video = request.video.to_video
    if videos:
        raise UsageError(f"--to-video takes image frames, not videos ({videos[0][0]})")
    if not is_video_path(to_video):
        raise UsageError(f"--to-video {to_video}: not a video file name (use .mp4, .mkv, .mov, .webm, ...)")
    if request.gt is not None:
        raise UsageError("--gt scores image outputs; it cannot score the frames of a --to-video video")


def _image_job(src: Path, rel: Path, out: OutputOptions, single: bool) -> Job:
    if single:
        return Job(src, out.output)
    ext = rel.suffix if out.fmt == "keep" else FORMATS[out.fmt]
    return Job(src, out.output / rel.with_name(rel.stem + out.suffix + ext))


def _video_job(src: Path, rel: Path, out: OutputOptions, vid: VideoOptions, single: bool) -> Job:
    if vid.frames_out is not None:
        return Job(src, vid.frames_out / rel.with_suffix(""), "frames")
    if single:
        return Job(src, out.output, "video")
    ext = "." + vid.container.lower().lstrip(".") if vid.container else rel.suffix
    return Job(src, out.output / rel.with_name(rel.stem + out.suffix + ext), "video")


def _refuse_collisions(jobs: list[Job]) -> None:
    """No output may overwrite an input, and no two inputs may share an output."""
    inputs = {identity(j.src) for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        key = j.dst.resolve()
        if key in inputs:
            raise UsageError(f"{j.dst}: the output would overwrite an input; choose another -o folder or a --suffix")
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {j.src} would both be written to {j.dst}; use --suffix or --format to tell them apart"
            )
        seen[key] = j.src


def output_folders(plan: Plan) -> list[Path]:
    """Every folder that outputs go into (a frames job's own folder)."""
    folders = [j.dst if j.kind == "frames" else j.dst.parent for j in plan.jobs]
    if plan.request.video.to_video is not None:
        folders.append(plan.request.video.to_video.parent)
    return sorted(set(folders))


def check_writable(folders) -> None:
    """Create each output folder and a temporary file in it once, before any model work: a folder
    that cannot be written fails the run at once, in one line, instead of every file after its
    model pass."""
    for folder in sorted(set(folders)):
        try:
            make_temp(folder / "probe").unlink()
        except OSError as e:
            raise ImageWriteError(f"{folder}: cannot write output files here ({e.strerror or e})") from None


def clean_stale_temps(folders) -> int:
    """Remove temporary files that dead runs left in the output folders (never a live run's)."""
    stale = stale_temps(set(folders))
    for t in stale:
        t.unlink(missing_ok=True)
    return len(stale)
