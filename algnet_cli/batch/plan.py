"""Planning a run: the request, inputs mapped to outputs, collisions refused before any work."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ImageWriteError, UsageError
from ..fileio import probe_writable, stale_temps
from ..images import FORMATS, is_image_path
from ..outputs import OutputGuard
from ..video import OUTPUT_CONTAINERS, EncodeOptions, check_encode_options, is_video_path
from .discover import discover, identity
from .record import RUN_RECORD


@dataclass(frozen=True)
class OutputOptions:
    """Where and how outputs are written.

    output: a folder, or a file name for a single input (None: only with --frames-out); folder: the
    user wrote -o with a trailing slash, so it is a folder whatever its suffix. fmt: 'keep' or a
    key of ``images.FORMATS``. max_pixels: the decoding limit (None: half the memory available).
    skip_sharp: images that triage judges sharp are not run through the model but copied (byte for
    byte when the output keeps the input's format).
    """

    output: Path | None = None
    folder: bool = False
    fmt: str = "keep"
    quality: int = 95
    suffix: str = ""
    skip_existing: bool = True
    max_pixels: int | None = None
    skip_sharp: bool = False


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
    problem: str | None = None  # why this one input cannot be done, found while planning (the rest go on)
    action: str = "run"  # run, or skip (its output exists and may not be replaced): decided once, by plan()
    fmt: str | None = None  # the --format asked for (png, jpg, tif, webp, bmp); None: the input's own

    def output_exists(self) -> bool:
        if self.kind == "frames":  # complete only when its record says so: an interrupted one is done again
            from ..video.frames import frames_complete

            return frames_complete(self.dst)
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
    loops: list[str] = field(default_factory=list)  # linked folders not walked again (a loop, or a folder twice)
    record_dir: Path = Path()  # where the run record goes: set by plan()
    sequence_action: str = "run"  # the --to-video video: run, or skip (it exists and may not be replaced)

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
    if any(c in out.suffix for c in ("/", "\\", "\0")) or out.suffix in (".", ".."):
        raise UsageError(f"--suffix {out.suffix!r}: a suffix is added to file names; it cannot hold / or \\")
    loops: list[str] = []
    unread: dict[Path, tuple[Path, str]] = {}
    found, not_images = discover(list(request.inputs), request.recursive, loops=loops, unread=unread)
    if not found and not unread:
        from ..images import UNREADABLE_SUFFIXES

        unreadable = [p for p in not_images if Path(p).suffix.lower() in UNREADABLE_SUFFIXES]
        if unreadable:
            kinds = ", ".join(sorted({Path(p).suffix.lower() for p in unreadable}))
            shown = ", ".join(unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
            raise UsageError(f"no input images or videos found; {len(unreadable)} files are in formats algnet does not "
                             f"read ({kinds}): {shown}")  # fmt: skip
        raise UsageError("no input images or videos found")
    videos = [(s, r) for s, r in found if is_video_path(s)]
    images = [(s, r) for s, r in found if not is_video_path(s)]
    result = Plan(request, not_images=not_images, loops=loops)
    guard = input_guard(request, found, overwrite=not out.skip_existing)
    for folder in unread:
        guard.add_input(folder, walked=True)
    if vid.to_video is not None:
        _check_sequence(request, videos)
        check_encode_options(vid.encode, [vid.to_video.suffix.lower()])
        guard.claim_file(vid.to_video, "--to-video", existing="keep")
        result.sequence, result.record_dir = [s for s, _ in images], vid.to_video.parent
        guard.claim_file(result.record_dir / RUN_RECORD, "the run record")
        result.sequence_action = "skip" if out.skip_existing and vid.to_video.exists() else "run"
        return result
    if vid.encode.fps is not None:
        raise UsageError("--fps only applies with --to-video")
    if out.output is None and (images or vid.frames_out is None):
        raise UsageError("missing -o/--output (an output folder, or a file name for a single input)")
    single = _single_output(found, images, out)
    result.images = [_image_job(s, r, out, single) for s, r in images]
    result.videos = [_video_job(s, r, out, vid, single) for s, r in videos]
    record_dir = out.output.parent if single and out.output is not None else (out.output or vid.frames_out)
    assert record_dir is not None  # checked above: -o, or --frames-out for videos only
    result.record_dir = record_dir
    _claim_outputs(guard, result, single)
    _refuse_collisions(result.jobs)
    for folder, (rel, reason) in unread.items():  # each a failure that names the folder; the rest go on
        result.images.append(Job(folder, out.output / rel if out.output is not None else folder, problem=reason))
    if any(j.kind == "video" for j in result.videos):
        check_encode_options(vid.encode, [j.dst.suffix.lower() for j in result.videos if j.kind == "video"])
    for jobs in (result.images, result.videos):
        jobs[:] = [_decide(_check_name(j), out.skip_existing) for j in jobs]
    return result


def input_guard(request: Request, found, *, overwrite: bool) -> OutputGuard:
    """The owner of this request's output paths, told every input: the folders named (walked with
    -r), every file found, and the ground-truth folder."""
    guard = OutputGuard(overwrite=overwrite)
    for item in request.inputs:
        if Path(item).is_dir():
            guard.add_input(item, walked=request.recursive)
    guard.add_inputs(src for src, _ in found)
    if request.gt is not None:
        guard.add_input(request.gt, "ground truth", walked=True)
    return guard


def _claim_outputs(guard: OutputGuard, result: Plan, single: bool) -> None:
    """Claim every path the run writes, before any work (see :mod:`algnet_cli.outputs`)."""
    from ..video.frames import FRAMES_MANIFEST

    out, vid = result.request.output, result.request.video
    for job in result.jobs:  # first: an output that is an input is named as such
        if job.kind != "frames":
            guard.claim_file(job.dst, "-o", existing="keep")
    if out.output is not None and not single:  # a single output file is its job's dst, claimed above
        guard.claim_folder(out.output, "-o", markers=(RUN_RECORD,))
    if vid.frames_out is not None and result.videos:
        guard.claim_folder(vid.frames_out, "--frames-out", markers=(RUN_RECORD, FRAMES_MANIFEST))
        for job in result.videos:
            guard.claim_folder(job.dst, "--frames-out", markers=(FRAMES_MANIFEST,))
    guard.claim_file(result.record_dir / RUN_RECORD, "the run record")


def _single_output(found: list, images: list, out: OutputOptions) -> bool:
    """Whether -o names the one output file; a file name of the wrong kind is a usage error."""
    o = out.output
    if o is None or out.folder or o.is_dir():
        return False
    if o.exists():
        if len(found) > 1:
            raise UsageError(f"{o}: is a file; with several inputs -o names a folder")
    elif len(found) > 1:
        if is_image_path(o) or is_video_path(o):
            raise UsageError(
                f"{o}: names one file, but there are {len(found)} inputs; -o names a folder (end it with /)"
            )
        return False
    if len(found) > 1:
        return False
    want, kind = (is_image_path, "an image") if images else (is_video_path, "a video")
    if want(o):
        return True
    if o.suffix and any(ch.isalpha() for ch in o.suffix):  # out.txt names a file; out.5 may be a folder
        other = "a video" if is_video_path(o) else ("an image" if is_image_path(o) else f"a {o.suffix} file")
        raise UsageError(
            f"-o {o}: names {other}, but the input is {kind}; name {kind} file, or a folder (end it with /)"
        )
    return False


def _read_problem(src: Path) -> str | None:
    """Why an input cannot be read, from its header (None: it can)."""
    from ..errors import ImageReadError
    from ..images import probe_image

    try:
        probe_image(src)
    except ImageReadError as e:
        return e.reason
    return None


def _decide(job: Job, skip_existing: bool) -> Job:
    """The one decision on a job, that the run, the dry run, the cluster and the record all read."""
    from ..images import WRITABLE

    if job.kind == "image" and job.problem is None and job.dst.suffix.lower() not in WRITABLE:
        unread = _read_problem(job.src)
        if unread is not None:  # --format would not help: the input itself cannot be read, say why
            return replace(job, problem=unread)
        what = job.dst.suffix or "a file without a suffix"
        return replace(job, problem=f"cannot write {what} images; add --format png (or jpg, tif, webp, bmp)")
    if job.problem is None and skip_existing and job.output_exists():
        return replace(job, action="skip")
    return job


def _check_name(job: Job) -> Job:
    """The job with a problem when its output's name is over the file system's limit."""
    import os

    folder = job.dst.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    size = len(os.fsencode(job.dst.name))
    if size > name_max:
        return replace(job, problem=f"its output's name is {size} bytes, over the file system's limit "
                   f"of {name_max}; rename the input or use a shorter --suffix")  # fmt: skip
    return job


def _check_sequence(request: Request, videos: list) -> None:
    to_video = request.video.to_video
    assert to_video is not None
    if videos:
        raise UsageError(f"--to-video takes image frames, not videos ({videos[0][0]})")
    if not is_video_path(to_video):
        raise UsageError(f"--to-video {to_video}: not a video file name (use .mp4, .mkv, .mov, .webm, ...)")
    if request.gt is not None:
        raise UsageError("--gt scores image outputs; it cannot score the frames of a --to-video video")


def _image_job(src: Path, rel: Path, out: OutputOptions, single: bool) -> Job:
    fmt = None if out.fmt == "keep" else out.fmt
    assert out.output is not None  # planned only with -o
    if single:
        return Job(src, out.output, fmt=fmt)
    ext = rel.suffix if fmt is None else FORMATS[fmt]
    return Job(src, out.output / rel.with_name(rel.stem + out.suffix + ext), fmt=fmt)


def _video_job(src: Path, rel: Path, out: OutputOptions, vid: VideoOptions, single: bool) -> Job:
    if vid.frames_out is not None:
        return Job(src, vid.frames_out / rel.with_suffix(""), "frames")
    assert out.output is not None  # planned only with -o or --frames-out
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
            probe_writable(folder)
        except OSError as e:
            raise ImageWriteError(f"{folder}: cannot write output files here ({e.strerror or e})") from None


def clean_stale_temps(folders) -> int:
    """Remove temporary files that dead runs left in the output folders (never a live run's)."""
    stale = stale_temps(set(folders))
    for t in stale:
        t.unlink(missing_ok=True)
    return len(stale)
