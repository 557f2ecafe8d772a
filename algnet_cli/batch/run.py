"""Running a plan: images, videos, scores against a ground truth, and the run record; one outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .. import interrupts
from ..video.process import VideoInterrupted
from .plan import Plan, check_writable, clean_stale_temps, output_folders
from .record import RUN_RECORD, FileResult, Outcome, mark_run_started, write_run_record
from .stills import run_images
from .videos import VideoEvents, VideosInterrupted, run_sequence, run_videos


class Events(VideoEvents):
    """What a run tells its caller as it goes. The command line renders these; the defaults do nothing."""

    def images_start(self, total: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def images_end(self) -> None: ...


class Executor(Protocol):
    """What carries out a plan's work: one machine (:class:`LocalExecutor`) or a cluster."""

    def run_images(self, jobs: list, options, on_result: Callable[[FileResult], None]) -> list[FileResult]: ...

    def run_videos(self, plan: Plan, events: VideoEvents) -> list: ...

    def run_sequence(self, plan: Plan, events: VideoEvents): ...

    def describe_run(self) -> dict: ...


class LocalExecutor:
    """The work on this machine, with a :class:`~algnet_cli.api.Deblurrer`."""

    def __init__(self, deblurrer):
        self.deblurrer = deblurrer

    def run_images(self, jobs, options, on_result):
        return run_images(jobs, self.deblurrer, options, on_result)

    def run_videos(self, plan, events):
        return run_videos(plan, self.deblurrer, events)

    def run_sequence(self, plan, events):
        return run_sequence(plan, self.deblurrer, events)

    def describe_run(self) -> dict:
        return self.deblurrer.describe_run()


def execute(plan: Plan, worker, events: Events | None = None) -> Outcome:
    """Carry out ``plan`` and write the run record; ``worker``: an :class:`Executor`, or a
    :class:`~algnet_cli.api.Deblurrer` (run here, through :class:`LocalExecutor`).

    Output folders are checked for writing, and temporaries that dead runs left in them removed,
    before any model work. Interrupts (SIGINT, SIGTERM) raise KeyboardInterrupt once the output
    being written is complete or finalised as a partial; the signal handlers that were there before
    are back when this returns or raises.
    """
    executor = worker if hasattr(worker, "run_images") else LocalExecutor(worker)
    with interrupts.routed():
        return _execute(plan, executor, events or Events())


def _execute(plan: Plan, executor: Executor, events: Events) -> Outcome:
    folders = output_folders(plan)
    check_writable(folders)
    clean_stale_temps([f for f in folders if f.is_dir()])
    mark_run_started(plan.record_dir)
    outcome = Outcome(not_images=plan.not_images)
    done: list[FileResult] = []  # the images finished so far, for the record of an interrupted run
    try:
        if plan.sequence:
            outcome.videos.append(executor.run_sequence(plan, events))
        else:
            events.images_start(len(plan.images))
            try:
                outcome.results = _run_planned(plan, executor.run_images, events, done)
            finally:
                events.images_end()
            outcome.videos = executor.run_videos(plan, events)
            if plan.request.gt is not None:
                outcome.scores = score_outputs(plan, outcome)
    except KeyboardInterrupt as e:
        outcome.results = outcome.results or done
        if isinstance(e, VideosInterrupted):  # those done and the one interrupted (partial), in the record
            outcome.videos = e.reports
        elif isinstance(e, VideoInterrupted):  # a frame sequence into one video
            outcome.videos.append(e.report)
        with contextlib.suppress(Exception):  # the interrupt is what this run reports, not the record
            _write_record(plan.record_dir, executor, outcome, status="interrupted")
        raise
    _write_record(plan.record_dir, executor, outcome)
    return outcome


def _run_planned(plan: Plan, run_stills, events: Events, done: list | None = None) -> list[FileResult]:
    """The image jobs that planning found no problem with through ``run_stills``; the others are
    failed results with the reason; all in input order. ``done`` collects each result as it comes."""
    done = [] if done is None else done

    def file_done(result: FileResult) -> None:
        done.append(result)
        events.file_done(result)

    failed = {}
    for job in plan.images:
        if job.problem is not None:
            failed[id(job)] = FileResult(str(job.src), str(job.dst), "failed", error=f"{job.src}: {job.problem}")
            file_done(failed[id(job)])
    results = iter(run_stills([j for j in plan.images if j.problem is None], plan.request.output, file_done))
    return [failed[id(j)] if id(j) in failed else next(results) for j in plan.images]


def _write_record(folder: Path, deblurrer, outcome: Outcome, status: str = "finished") -> None:
    try:
        outcome.record = write_run_record(folder, deblurrer.describe_run(), outcome, status)
    except OSError as e:  # a full disk: the summary still tells what happened
        outcome.record, outcome.record_error = folder / RUN_RECORD, e.strerror or str(e)


def score_outputs(plan: Plan, outcome: Outcome):
    """Score every written output, and its input, against the ground truth matched by path or stem."""
    from ..metrics import Protocol
    from ..report import ScoreReport
    from ..scoring import Pair, list_images, match_truth, score_pairs

    gt = plan.request.gt
    assert gt is not None  # scored only with --gt
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
