"""Video jobs: each video (or its frames) through the model, skip-existing and interrupts handled alike."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import AlgnetError, UsageError
from ..video import VideoReport, partial_path, process_sequence, process_video
from ..video.process import VideoInterrupted
from ..video.segments import segments_folder
from .plan import Job, Plan


class VideoEvents:
    """What the video runs tell the caller as they go (progress); every method may be left as is."""

    def video_start(self, report: VideoReport) -> None: ...

    def video_frame(self, report: VideoReport) -> None: ...

    def video_done(self, report: VideoReport) -> None: ...

    def video_interrupted(self, report: VideoReport | None, partial: Path | None) -> None: ...

    def message(self, text: str) -> None: ...


def run_videos(plan: Plan, deblurrer, events: VideoEvents, run_job=None) -> list[VideoReport]:
    """Every video job of ``plan``, in order; a video that cannot be processed is a failed report.

    ``run_job(job, plan, deblurrer, events)`` processes one job whose output is not skipped
    (default :func:`run_one`; a cluster cuts videos into segments instead).
    """
    run_job = run_job or run_one
    reports: list[VideoReport] = []
    for job in plan.videos:
        if job.problem is not None:
            report = VideoReport(str(job.src), str(job.dst), status="failed", error=f"{job.src}: {job.problem}")
        elif job.action == "skip":
            report = VideoReport(str(job.src), str(job.dst), status="skipped")
        else:
            try:
                report = run_job(job, plan, deblurrer, events)
            except KeyboardInterrupt as e:  # the videos done so far, and the one interrupted, go in the record
                if isinstance(e, VideoInterrupted):
                    reports.append(e.report)
                raise VideosInterrupted(reports) from None
        events.video_done(report)
        reports.append(report)
    return reports


class VideosInterrupted(KeyboardInterrupt):
    """An interrupt during the videos of a run, with the reports of those done and the one it stopped."""

    def __init__(self, reports: list[VideoReport]):
        super().__init__()
        self.reports = reports


def run_one(job: Job, plan: Plan, deblurrer, events: VideoEvents) -> VideoReport:
    """One video job through ``deblurrer`` (a restorer); a video that cannot be processed is a failed report."""
    vid = plan.request.video
    frames = job.kind == "frames"
    if not frames:
        partial_path(job.dst).unlink(missing_ok=True)  # superseded by this run
    try:
        report = process_video(
            job.src,
            None if frames else job.dst,
            deblurrer,
            vid.encode,
            frames_out=job.dst if frames else None,
            on_start=events.video_start,
            on_frame=events.video_frame,
        )
        if not frames and report.status == "done":  # an interrupted cluster run's segments: superseded
            shutil.rmtree(segments_folder(job.dst), ignore_errors=True)
        return report
    except KeyboardInterrupt as e:
        partial = partial_path(job.dst)
        stopped = e.report if isinstance(e, VideoInterrupted) else None
        events.video_interrupted(stopped, partial if not frames and partial.exists() else None)
        raise
    except AlgnetError as e:
        usage = isinstance(e, UsageError)
        return VideoReport(str(job.src), str(job.dst), status="failed", error=str(e), usage=usage)
    except OSError as e:  # a full disk, a folder gone: this video fails, the batch goes on
        reason = e.strerror or str(e)
        return VideoReport(
            str(job.src), str(job.dst), status="failed", error=f"{job.src}: could not write {job.dst}: {reason}"
        )


def run_sequence(plan: Plan, deblurrer, events: VideoEvents) -> VideoReport:
    """The --to-video frames into one video (skipped, with a message, when it exists and may not be replaced)."""
    dst = plan.request.video.to_video
    assert dst is not None  # a sequence is planned only with --to-video
    first = plan.sequence[0]
    if plan.sequence_action == "skip":
        events.message(f"{dst} exists; use --overwrite to replace it")
        report = VideoReport(str(first.parent), str(dst), status="skipped")
    else:
        report = VideoReport(f"{first.parent} ({len(plan.sequence)} frames)", str(dst))
        report.frames_expected = len(plan.sequence)
        events.video_start(report)
        try:
            report = process_sequence(
                plan.sequence, dst, deblurrer, plan.request.video.encode, on_frame=events.video_frame
            )
        except AlgnetError as e:
            report.status, report.error = "failed", str(e)
    events.video_done(report)
    return report
