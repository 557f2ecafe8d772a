"""Still images through the pipeline: decode ahead, the model, encode behind, one result per file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError, describe_error
from ..pipeline import Item, Pipeline
from .plan import Job, OutputOptions
from .record import FileResult

if TYPE_CHECKING:
    from ..images.read import Opened

#: decoded images waiting for the model, and results waiting for the writer (memory stays bounded)
PREFETCH = 2


@dataclass
class Decoded:
    """One input file as decoded (:class:`~algnet_cli.images.Opened`: every frame, upright, and its
    description), and the notes to carry to the output."""

    opened: Opened
    notes: list[str] = field(default_factory=list)
    blur: float | None = None  # the input's blur score (its first frame)
    blur_after: float | None = None  # the output's, once it is written
    verdict: str | None = None  # with --skip-sharp, triage's verdict: a sharp one is copied, not deblurred

    @property
    def sharp(self) -> bool:
        return self.verdict == "sharp"

    @property
    def pixels(self):
        return self.opened.frames[0]

    @property
    def frames(self) -> list | None:
        return self.opened.frames if len(self.opened.frames) > 1 else None


def load_image(job: Job, max_pixels: int | None = None, skip_sharp: bool = False) -> Decoded:
    """Decode ``job.src`` (every frame of a multi-frame file) after the header checks, and score its
    blur; see :func:`~algnet_cli.images.open_image` for ``max_pixels``. With ``skip_sharp``, an
    image that triage judges sharp is marked to be copied rather than deblurred."""
    from ..images import open_image
    from ..triage import file_score, judge

    opened = open_image(job.src, max_pixels=max_pixels)
    notes = list(opened.notes)
    if len(opened.frames) > 1:
        kind = opened.description.frames_kind or "frames"
        notes.append(f"{len(opened.frames)} {kind}, each deblurred and written back")
    blur = file_score(opened.frames)  # the blurriest page or frame: one blurred page means the file is deblurred
    return Decoded(opened, notes, blur=blur, verdict=judge(blur) if skip_sharp else None)


def output_format(job: Job) -> str | None:
    """The format to write: the one --format asked for; else the input's own (whatever its name
    says) when the output keeps the input's suffix; else the one the output's name says."""
    from pathlib import Path

    from ..images import FORMATS, format_of_suffix

    if job.fmt is not None:
        return format_of_suffix(Path("x" + FORMATS[job.fmt]))
    if job.dst.suffix.lower() == job.src.suffix.lower():
        return None
    return format_of_suffix(job.dst)


def save_image(job: Job, out, decoded: Decoded, quality: int = 95) -> list[str]:
    """Write the result (a list of frames for a multi-frame input) atomically, as the input's
    description says; the notes on whatever the output could not hold. An input judged sharp
    (``out`` None) is copied byte for byte when the output keeps its format, else written as decoded."""
    from ..images import save_image as save

    opened = decoded.opened
    fmt = output_format(job)
    if out is None and fmt in (None, opened.description.format):
        _copy(job.src, job.dst)
        return []
    frames = opened.frames if out is None else out if isinstance(out, list) else [out]
    return save(job.dst, frames, opened.description, quality=quality, fmt=fmt,
                frame_descriptions=opened.frame_descriptions)  # fmt: skip


def _copy(src, dst) -> None:
    import shutil

    from ..fileio import atomic_write

    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def run_images(
    jobs: list[Job], deblurrer, options: OutputOptions, on_result: Callable[[FileResult], None] = lambda r: None
) -> list[FileResult]:
    """Every job through ``deblurrer`` (a :class:`~algnet_cli.api.Deblurrer`), in input order.

    Jobs planned as "skip" (their output exists) are reported as skipped, in input order. A bad file becomes a failed
    result with its reason; the others go on. Same-size single-frame images share a batch where
    the deblurrer takes several (a GPU with memory to spare).
    """
    from ..triage import blur_score

    results: list[FileResult] = []

    def report(item: Item) -> None:
        results.append(_result(item))
        on_result(results[-1])

    def save(item: Item) -> None:
        if item.run:  # not a skipped one
            out, decoded = item.data
            decoded.notes.extend(save_image(item.key, out, decoded, options.quality))
            if out is None:  # copied: the output is the input, whose score is known
                decoded.blur_after = decoded.blur
            else:
                decoded.blur_after = blur_score(out[0] if isinstance(out, list) else out)
            item.data = (None, decoded)  # the output kept no longer than needed

    pipeline = Pipeline(
        lambda batch: _restore(deblurrer, batch),
        save,
        load=lambda job: load_image(job, options.max_pixels, options.skip_sharp),
        readers=PREFETCH,
        depth=PREFETCH,
        batch_key=_batch_key,
        batch_size=lambda d: deblurrer.frames_per_batch(*d.pixels.shape[:2]),
    )
    items = (Item(job, run=job.action == "run") for job in jobs)
    pipeline.run(items, report)
    return results


def _batch_key(decoded: Decoded):
    if decoded.frames is not None or decoded.sharp:
        return None
    return decoded.pixels.shape, decoded.pixels.dtype.str


def _restore(deblurrer, batch: list[Decoded]):
    """(results, the runner's report): each result is (output, its Decoded); a multi-frame input's
    output is the list of its frames."""
    if len(batch) > 1:
        outs, report = deblurrer.run([d.pixels for d in batch])
        return list(zip(outs, batch)), report
    decoded = batch[0]
    if decoded.sharp:  # --skip-sharp: copied, not deblurred
        return [(None, decoded)], None
    if decoded.frames is None:
        outs, report = deblurrer.run([decoded.pixels])
        return [(outs[0], decoded)], report
    frames, report = [], None
    for frame in decoded.frames:
        out, r = deblurrer.run([frame])
        frames.append(out[0])
        report = r if report is None else report.add(r)
    return [(frames, decoded)], report


def _result(item: Item) -> FileResult:
    job: Job = item.key
    if not item.run:
        return FileResult(str(job.src), str(job.dst), "skipped")
    res = FileResult(str(job.src), str(job.dst), "done", seconds=item.seconds)
    if item.data is not None:
        decoded = item.data[1]
        res.size = (decoded.pixels.shape[1], decoded.pixels.shape[0])
        res.notes = list(dict.fromkeys(decoded.notes))
        res.image = decoded.opened.description.summary()
        res.blur = {"input": round(decoded.blur, 4)} if decoded.blur is not None else {}
        if decoded.blur is not None and decoded.blur_after is not None:  # written
            res.blur["output"] = round(decoded.blur_after, 4)
            res.blur["gain"] = round(decoded.blur - decoded.blur_after, 4)
        if decoded.verdict is not None:
            res.triage = {"verdict": decoded.verdict, "action": "copied" if decoded.sharp else "deblurred"}
        if decoded.sharp:
            how = "copied unchanged" if output_format(job) in (None, decoded.opened.description.format) else "converted"
            res.notes.append(f"judged sharp (blur {decoded.blur:.3f}, --skip-sharp): {how}, not deblurred")
    if item.report is not None:
        res.run = item.report.to_dict()
    if item.error is not None:
        reason = describe_error(item.error)
        if item.data is not None:  # the model ran: writing failed
            reason = f"could not write {job.dst}: {reason}"
        res.status, res.error = "failed", reason if str(job.src) in reason else f"{job.src}: {reason}"
        res.usage = isinstance(item.error, UsageError)  # a usage error met during the work: exit code 2
    return res
