"""Running a plan: images, videos, scores against a ground truth, and the run record; one outcome."""

from __future__ import annotations

from pathlib import Path

from .. import interrupts
from .plan import Plan, check_writable, clean_stale_temps, output_folders
from .record import RUN_RECORD, FileResult, Outcome, write_run_record
from .stills import run_images
from .videos import VideoEvents, run_sequence, run_videos


class Events(VideoEvents):
    """What a run tells its caller as it goes. The command line renders these; the defaults do nothing."""

    def images_start(self, total: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def images_end(self) -> None: ...


def execute(plan: Plan, deblurrer, events: Events | None = None, *, run_stills=None, run_movies=None) -> Outcome:
    """Carry out ``plan`` with ``deblurrer`` (a :class:`~algnet_cli.api.Deblurrer`) and write the run record.

    Output folders are checked for writing, and temporaries that dead runs left in them removed,
    before any model work. Interrupts (SIGINT, SIGTERM) raise KeyboardInterrupt once the output
    being written is complete or finalised as a partial. ``run_stills(jobs, options, on_result)``
    replaces :func:`~algnet_cli.batch.stills.run_images` for the image files (a cluster's scheduler),
    and ``run_movies(plan, events)`` replaces :func:`~algnet_cli.batch.videos.run_videos`;
    ``deblurrer`` then only needs to deblur video frames and describe the run.
    """
    events = events or Events()
    if run_stills is None:

        def run_stills(jobs, options, on_result):
            return run_images(jobs, deblurrer, options, on_result)

    with interrupts.routed():  # the caller's signal handlers are back when this returns or raises
        return _execute(plan, deblurrer, events, run_stills, run_movies)


def _execute(plan: Plan, deblurrer, events: Events, run_stills, run_movies) -> Outcome:
    folders = output_folders(plan)
    check_writable(folders)
    clean_stale_temps([f for f in folders if f.is_dir()])
    outcome = Outcome(not_images=plan.not_images)
    if plan.sequence:
        outcome.videos.append(run_sequence(plan, deblurrer, events))
    else:
        events.images_start(len(plan.images))
        try:
            outcome.results = _run_planned(plan, run_stills, events)
        finally:
            events.images_end()
        outcome.videos = (run_movies or (lambda p, e: run_videos(p, deblurrer, e)))(plan, events)
        if plan.request.gt is not None:
            outcome.scores = score_outputs(plan, outcome)
    _write_record(plan.record_dir, deblurrer, outcome)
    return outcome


def _run_planned(plan: Plan, run_stills, events: Events) -> list[FileResult]:
    """The image jobs that planning found no problem with through ``run_stills``; the others are
    failed results with the reason; all in input order."""
    failed = {}
    for job in plan.images:
        if job.problem is not None:
            failed[id(job)] = FileResult(str(job.src), str(job.dst), "failed", error=f"{job.src}: {job.problem}")
            events.file_done(failed[id(job)])
    results = iter(run_stills([j for j in plan.images if j.problem is None], plan.request.output, events.file_done))
    return [failed[id(j)] if id(j) in failed else next(results) for j in plan.images]


def _write_record(folder: Path, deblurrer, outcome: Outcome) -> None:
    try:
        outcome.record = write_run_record(folder, deblurrer.describe_run(), outcome)
    except OSError as e:  # a full disk: the summary still tells what happened
        outcome.record, outcome.record_error = folder / RUN_RECORD, e.strerror or str(e)


def score_outputs(plan: Plan, outcome: Outcome):
    """Score every written output, and its input, against the ground truth matched by path or stem."""
    from ..metrics import Protocol
    from ..report import ScoreReport
    from ..scoring import Pair, list_images, match_truth, score_pairs

    gt = plan.request.gt
    truths = {p.relative_to(gt).with_suffix("").as_posix(): p for p in list_images(gt)}
    written = {r.output for r in outcome.results if r.status in ("done", "skipped")}
    pairs, inputs, missing = [], {}, []
    for job in plan.images:
        if str(job.dst) not in written:
            continue
        target = match_truth(job.src, truths)
        if target is None:
            missing.append(str(job.src))
            continue
        pairs.append(Pair(str(job.dst), job.dst, target))
        inputs[str(job.dst)] = job.src
    protocol = Protocol()
    report = ScoreReport(protocol.describe(), unmatched_pred=missing)
    report.rows = list(score_pairs(pairs, protocol, inputs=inputs))
    return report
