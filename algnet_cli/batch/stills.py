"""Still images through the pipeline: decode ahead, the model, encode behind, one result per file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError
from ..pipeline import Item, Pipeline
from .plan import Job, OutputOptions
from .record import FileResult, describe_error

#: decoded images waiting for the model, and results waiting for the writer (memory stays bounded)
PREFETCH = 2


@dataclass
class Decoded:
    """One input file as decoded: its first (or only) frame upright, all frames of a multi-frame file,
    and the metadata and notes to carry to the output."""

    pixels: object  # numpy array, upright
    meta: dict
    frames: list | None = None  # every frame of a multi-page TIFF or an animation
    how: object | None = None  # images.Frames: how to write them back


def load_image(job: Job, max_pixels: int | None = None) -> Decoded:
    """Decode ``job.src`` (every frame of a multi-frame file) after the header checks; see
    :func:`~algnet_cli.images.read_image` for ``max_pixels``."""
    from ..images import WRITABLE, probe_image, read_frames, read_image, read_metadata

    if job.dst.suffix.lower() not in WRITABLE:  # before decoding and the model, not after
        raise UsageError(f"{job.dst}: cannot write {job.dst.suffix or 'a file without a suffix'} images; use --format")
    notes: list[str] = []
    header = probe_image(job.src)
    if header is not None and header.frames > 1:  # multi-page TIFF, animated WebP/GIF: every frame
        frames, how = read_frames(job.src, max_pixels=max_pixels, notes=notes)
        notes.append(f"{len(frames)} {how.kind}, each deblurred and written back")
        pixels = frames[0]
    else:
        frames, how = None, None
        pixels = read_image(job.src, max_pixels=max_pixels, notes=notes)
    # metadata only once the size is known to be sane: Pillow decodes a PNG to find EXIF after IDAT
    return Decoded(pixels, {**read_metadata(job.src), "notes": notes}, frames, how)


def save_image(job: Job, out, decoded: Decoded, quality: int = 95) -> None:
    """Write the result (a list of frames for a multi-frame input) atomically, metadata kept."""
    from ..images import write_frames, write_image

    if decoded.frames is not None:
        write_frames(job.dst, out, decoded.how, quality=quality)
    else:
        write_image(job.dst, out, quality=quality, meta=decoded.meta)


def run_images(
    jobs: list[Job], deblurrer, options: OutputOptions, on_result: Callable[[FileResult], None] = lambda r: None
) -> list[FileResult]:
    """Every job through ``deblurrer`` (a :class:`~algnet_cli.api.Deblurrer`), in input order.

    Jobs whose output exists are skipped when ``options.skip_existing`` (checked as the stream
    reaches them, so results stay in input order). A bad file becomes a failed
    result with its reason; the others go on. Same-size single-frame images share a batch where
    the deblurrer takes several (a GPU with memory to spare).
    """
    results: list[FileResult] = []

    def report(item: Item) -> None:
        results.append(_result(item))
        on_result(results[-1])

    def save(item: Item) -> None:
        if item.run:  # not a skipped one
            save_image(item.key, item.data[0], item.data[1], options.quality)

    pipeline = Pipeline(
        lambda batch: _restore(deblurrer, batch),
        save,
        load=lambda job: load_image(job, options.max_pixels),
        readers=PREFETCH,
        depth=PREFETCH,
        batch_key=_batch_key,
        batch_size=lambda d: deblurrer.frames_per_batch(*d.pixels.shape[:2]),
    )
    items = (Item(job, run=not (options.skip_existing and job.output_exists())) for job in jobs)
    pipeline.run(items, report)
    return results


def _batch_key(decoded: Decoded):
    if decoded.frames is not None:
        return None
    return decoded.pixels.shape, decoded.pixels.dtype.str


def _restore(deblurrer, batch: list[Decoded]):
    """(results, the runner's report): each result is (output, its Decoded); a multi-frame input's
    output is the list of its frames."""
    if len(batch) > 1:
        outs, report = deblurrer.run([d.pixels for d in batch])
        return list(zip(outs, batch)), report
    decoded = batch[0]
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
        res.notes = list(decoded.meta.get("notes", []))
    if item.report is not None:
        res.run = item.report.to_dict()
    if item.error is not None:
        reason = describe_error(item.error)
        if item.data is not None:  # the model ran: writing failed
            reason = f"could not write {job.dst}: {reason}"
        res.status, res.error = "failed", reason if str(job.src) in reason else f"{job.src}: {reason}"
    return res
