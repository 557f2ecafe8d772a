"""Files in, files out: discovery, output naming, prefetching, the model loop, atomic writes, a run record."""

from __future__ import annotations

import glob
import json
import os
import platform
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AlgnetError, UsageError
from .fileio import atomic_write_text, make_temp, stale_temps
from .images import FORMATS, is_image_path
from .video import is_video_path

RUN_RECORD = "algnet-run.json"


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class FileResult:
    input: str
    output: str
    status: str  # done | skipped | failed
    size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None
    tiles: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchOutcome:
    results: list[FileResult] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]


def discover(
    inputs: list[str], recursive: bool, exclude: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders and globs into (source, relative output path); also the skipped non-images.

    Folders contribute image and video files in natural order (``f2`` before ``f10``; all levels
    with ``recursive``, mirroring the tree); files named explicitly are taken whatever their
    suffix, so a bad one is reported rather than ignored. Entries with an image or video suffix
    that are not readable regular files (broken links, FIFOs, ...) are kept too, so that the run
    names them. ``exclude`` (the output folder) is never descended into, so that a run writing
    inside its input tree does not read its own outputs back. A path named twice counts once.
    """
    from natsort import natsorted

    found: list[tuple[Path, Path]] = []
    skipped: list[str] = []
    skip_dir = exclude.resolve() if exclude is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            walker = os.walk(p) if recursive else [(str(p), [], os.listdir(p))]
            for dirpath, dirnames, filenames in walker:
                dirnames[:] = natsorted(
                    d for d in dirnames if not d.startswith(".") and (Path(dirpath) / d).resolve() != skip_dir
                )
                for name in natsorted(filenames):
                    f = Path(dirpath) / name
                    if name.startswith(".") or f.is_dir():
                        continue
                    if is_image_path(f) or is_video_path(f):
                        found.append((f, f.relative_to(p)))
                    elif f.is_file():
                        skipped.append(str(f))
        elif os.path.lexists(p):  # broken links too: reading them says why they fail
            found.append((p, Path(p.name)))
        else:
            matches = natsorted(glob.glob(item, recursive=recursive))
            if not matches:
                raise UsageError(f"{item}: no such file, folder or matching glob")
            for m in matches:
                mp = Path(m)
                if not mp.is_dir():
                    found.append((mp, Path(mp.name)))
    return _unique(found), skipped


def _unique(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The first of each source named more than once (as itself, through a link, or by two globs)."""
    seen: set[Path] = set()
    out = []
    for src, rel in found:
        key = _identity(src)
        if key not in seen:
            seen.add(key)
            out.append((src, rel))
    return out


def _identity(path: Path) -> Path:
    """The resolved path, or the absolute one for a link loop (which reading then reports)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def plan_jobs(
    found: list[tuple[Path, Path]], output: Path, fmt: str = "keep", suffix: str = "", *, folder: bool = False
) -> list[Job]:
    """Map inputs to outputs; refuse collisions and outputs that would overwrite an input, before any work.

    ``output`` is a file name for a single input with an image suffix, unless ``folder`` (the user
    wrote it with a trailing slash) or it is an existing folder.
    """
    single_file_out = len(found) == 1 and not folder and is_image_path(output) and not output.is_dir()
    if not single_file_out and output.exists() and not output.is_dir():
        raise UsageError(f"{output}: is a file; with several inputs -o names a folder")
    jobs = []
    for src, rel in found:
        if single_file_out:
            dst = output
        else:
            ext = rel.suffix if fmt == "keep" else FORMATS[fmt]
            dst = output / rel.with_name(rel.stem + suffix + ext)
        jobs.append(Job(src, dst))
    inputs = {_identity(j.src) for j in jobs}
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
    return jobs


def check_writable(folders) -> None:
    """Create each output folder and a temporary file in it once, before any model work: a folder
    that cannot be written fails the run at once, in one line, instead of every file after its
    model pass."""
    from .errors import ImageWriteError

    for folder in sorted(set(folders)):
        try:
            make_temp(folder / "probe").unlink()
        except OSError as e:
            raise ImageWriteError(f"{folder}: cannot write output files here ({e.strerror or e})") from None


def clean_stale_temps(jobs: list[Job]) -> int:
    """Remove temporary files that dead runs left in the output folders (never a live run's)."""
    stale = stale_temps({j.dst.parent for j in jobs})
    for t in stale:
        t.unlink(missing_ok=True)
    return len(stale)


def run_batch(
    jobs: list[Job],
    process: Callable,  # (decoded image, job) -> (result array, tiles)
    load: Callable,  # job -> decoded image (runs on reader threads)
    save: Callable,  # (job, result array, decoded) -> None (runs on the writer thread)
    *,
    skip_existing: bool = True,
    prefetch: int = 2,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchOutcome:
    """Decode ahead on reader threads, run the model here, encode behind on a writer thread.

    At most ``prefetch`` decoded images wait for the model and ``prefetch`` results wait for the
    writer, so memory is bounded for any number of files. A bad file becomes a failed result with
    its reason; the batch goes on.
    """
    outcome = BatchOutcome()
    todo = []
    for job in jobs:
        if skip_existing and job.dst.exists():
            r = FileResult(str(job.src), str(job.dst), "skipped")
            outcome.results.append(r)
            on_result and on_result(r)
        else:
            todo.append(job)
    readers = ThreadPoolExecutor(max_workers=max(1, prefetch), thread_name_prefix="algnet-read")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algnet-write")
    reading: deque[tuple[Job, Future]] = deque()
    writing: deque[tuple[FileResult, Future]] = deque()

    def finish_write(block: bool) -> None:
        while writing and (block or writing[0][1].done()):
            res, fut = writing.popleft()
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - one file's failure, whatever its kind, is that file's
                res.status, res.error = "failed", f"{res.input}: could not write {res.output}: {describe_error(e)}"
            outcome.results.append(res)
            on_result and on_result(res)

    try:
        it = iter(todo)
        for job in it:
            reading.append((job, readers.submit(load, job)))
            if len(reading) > prefetch:
                break
        while reading:
            job, fut = reading.popleft()
            nxt = next(it, None)
            if nxt is not None:
                reading.append((nxt, readers.submit(load, nxt)))
            res = FileResult(str(job.src), str(job.dst), "done")
            t0 = time.perf_counter()
            try:
                decoded = fut.result()
                res.size = (decoded.pixels.shape[1], decoded.pixels.shape[0])
                res.notes = list(decoded.meta.get("notes", []))
                out, res.tiles = process(decoded, job)
            except Exception as e:  # noqa: BLE001 - one file's failure, whatever its kind, is that file's
                reason = describe_error(e)
                res.status, res.error = "failed", reason if str(job.src) in reason else f"{job.src}: {reason}"
                outcome.results.append(res)
                on_result and on_result(res)
                continue
            res.seconds = time.perf_counter() - t0
            while len(writing) >= prefetch:
                writing[0][1].exception()  # wait for the oldest write
                finish_write(block=False)
            writing.append((res, writer.submit(save, job, out, decoded)))
            finish_write(block=False)
        finish_write(block=True)
    finally:
        for _, f in reading:
            f.cancel()
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
    return outcome


def describe_error(e: BaseException) -> str:
    """One line for a failure: the message of our own errors, the kind and first line of others."""
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        return f"out of memory ({_first_line(e) or 'the allocation failed'}); try a smaller --tile or --max-pixels"
    if isinstance(e, AlgnetError):
        return str(e)  # ours: one line already (a file name may hold a newline; the CLI escapes it)
    text = _first_line(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else ""


def write_run_record(folder: Path, info: dict, outcome: BatchOutcome, videos: list | None = None) -> Path:
    from . import __version__

    record = dict(info)
    record["versions"] = {"algnet-cli": __version__, "python": platform.python_version(), **record.get("versions", {})}
    record["files"] = [
        {
            "input": r.input,
            "output": r.output,
            "status": r.status,
            "size": list(r.size) if r.size else None,
            "seconds": round(r.seconds, 4),
            "tiles": r.tiles,
            **({"error": r.error} if r.error else {}),
            **({"notes": r.notes} if r.notes else {}),
        }
        for r in outcome.results
    ]
    record["not_images"] = outcome.not_images
    if videos:
        record["videos"] = [v.to_dict() for v in videos]
    path = folder / RUN_RECORD
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


@dataclass
class Decoded:
    pixels: object  # numpy array, upright
    meta: dict


def image_pipeline(deblurrer, quality: int = 95, max_pixels: int | None = None):
    """(load, process, save) for :func:`run_batch` over still images with a :class:`~algnet_cli.api.Deblurrer`.

    ``max_pixels``: the decoding limit (see :func:`~algnet_cli.images.read_image`).
    """
    from .api import array_to_tensor, tensor_to_array
    from .images import WRITABLE, probe_image, read_frames, read_image, read_metadata, write_frames, write_image

    def load(job: Job) -> Decoded:
        if job.dst.suffix.lower() not in WRITABLE:  # before decoding and the model, not after
            raise UsageError(
                f"{job.dst}: cannot write {job.dst.suffix or 'a file without a suffix'} images; use --format"
            )
        notes: list[str] = []
        header = probe_image(job.src)
        if header is not None and header.frames > 1:  # multi-page TIFF, animated WebP/GIF: every frame
            frames, how = read_frames(job.src, max_pixels=max_pixels, notes=notes)
            notes.append(f"{len(frames)} {how.kind}, each deblurred and written back")
            extra = {"frames": frames, "how": how}
        else:
            frames, extra = [read_image(job.src, max_pixels=max_pixels, notes=notes)], {}
        # metadata only once the size is known to be sane: Pillow decodes a PNG to find EXIF after IDAT
        return Decoded(frames[0], {**read_metadata(job.src), "notes": notes, **extra})

    def run_one(pixels):
        x, alpha, scale, grey = array_to_tensor(pixels)
        y = deblurrer.runner.restore(x)
        return tensor_to_array(y, alpha, scale, grey, pixels.dtype), deblurrer.runner.last_tiles

    def process(decoded: Decoded, job: Job):
        if "frames" not in decoded.meta:
            return run_one(decoded.pixels)
        outs = [run_one(f) for f in decoded.meta["frames"]]
        return [o for o, _ in outs], sum(t for _, t in outs)

    def save(job: Job, out, decoded: Decoded) -> None:
        if "frames" in decoded.meta:
            write_frames(job.dst, out, decoded.meta["how"], quality=quality)
        else:
            write_image(job.dst, out, quality=quality, meta=decoded.meta)

    return load, process, save
