"""Videos on a cluster: keyframe segments deblurred and encoded by the workers, joined by the driver.

Finished segments are kept in a hidden folder beside the output (``.NAME.algnet-segments``) until the
join, so an interrupted run resumes from them; the folder goes once the video is complete. A video
that cannot be cut at keyframes (one keyframe, no timestamps), and frame folders (``--frames-out``),
are processed by the driver with their frames spread over the workers instead.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from ..batch.plan import Job, Plan
from ..batch.videos import VideoEvents, run_one, run_videos
from ..errors import AlgnetError
from ..video import VideoReport, partial_path
from ..video.process import VideoInterrupted
from ..video.segments import (
    NOT_AS_INDEXED,
    SEGMENT_SUFFIX,
    Segment,
    index_segments,
    join_segments,
    segment_done,
    segments_folder,
)
from .driver import ClusterRestorer, WorkerPool, schedule

#: segments per worker: enough to balance uneven segments, few enough to keep the joins cheap
SEGMENTS_PER_WORKER = 2


def run_videos_on(pool: WorkerPool, plan: Plan, events: VideoEvents) -> list[VideoReport]:
    """Every video job of ``plan`` on the pool, in order; a video that cannot be processed is a failed report."""

    def run_job(job: Job, plan: Plan, restorer, events: VideoEvents) -> VideoReport:
        if job.kind == "frames":
            return run_one(job, plan, restorer, events)
        try:
            report = _segmented(pool, job, plan, events)
        except AlgnetError as e:
            return VideoReport(str(job.src), str(job.dst), status="failed", error=str(e))
        if report is None:  # not cut: frames spread over the workers instead
            report = run_one(job, plan, restorer, events)
        return report

    return run_videos(plan, ClusterRestorer(pool), events, run_job)


def _segmented(pool: WorkerPool, job: Job, plan: Plan, events: VideoEvents) -> VideoReport | None:
    encode = plan.request.video.encode
    segments = index_segments(job.src, SEGMENTS_PER_WORKER * pool.size)
    if not segments:
        return None
    partial_path(job.dst).unlink(missing_ok=True)  # superseded by this run
    fresh = not plan.request.output.skip_existing
    folder, segments = _prepare_folder(job, encode, segments, run_key(pool), fresh=fresh)
    parts = [folder / f"{s.index:05d}{SEGMENT_SUFFIX}" for s in segments]
    started = time.perf_counter()
    report = VideoReport(str(job.src), str(job.dst), frames_expected=sum(s.frames for s in segments))
    events.video_start(report)
    todo = [i for i, part in enumerate(parts) if not segment_done(part)]
    for _ in range(sum(segments[i].frames for i in range(len(parts)) if i not in todo)):
        report.frames += 1
        events.video_frame(report)
    failures: list[str] = []

    def done(k: int, pts: list[int]) -> None:
        for _ in pts:
            report.frames += 1
            events.video_frame(report)

    def submit(actor, i: int):
        dst = str(parts[i].absolute())
        return actor.segment.remote(str(job.src.absolute()), segments[i], dst, encode, str(job.dst.absolute()))

    def failed(k: int, why: str) -> None:  # the worker's reason may name the file and the segment already
        why = why.replace(f"{job.src.absolute()}: ", "")
        label = f"segment {todo[k] + 1}"
        failures.append(why if why.startswith(label + ":") else f"{label}: {why}")

    try:
        schedule(pool, todo, submit, done, failed)
    except KeyboardInterrupt:
        finished = sum(segment_done(p) for p in parts)
        kept = f"{finished} of {len(parts)} segments kept in {folder}, rerun to resume"
        events.message(f"interrupted; {kept.replace('segments', f'segments of {job.src}', 1)}")
        report.status, report.seconds = "partial", time.perf_counter() - started
        report.problems.append(f"interrupted: {kept}")
        raise VideoInterrupted(report) from None
    if failures and all(NOT_AS_INDEXED in f for f in failures):
        # the container does not seek to the keyframes its packets name (MPEG-TS, a file without an
        # index): the video is streamed through the workers instead, as one machine reads it
        shutil.rmtree(folder, ignore_errors=True)
        events.message(f"{job.src}: cannot be cut at its keyframes ({failures[0]}); its frames are streamed instead")
        return None
    if failures:
        return VideoReport(str(job.src), str(job.dst), status="failed", error=f"{job.src}: {failures[0]}")
    report.frames = 0
    try:
        join_segments(job.src, parts, job.dst, report, container_format=None)
    except AlgnetError as e:
        return VideoReport(
            str(job.src), str(job.dst), status="failed", error=f"{e}; the segments stay in {folder} for a rerun"
        )
    report.seconds = time.perf_counter() - started  # the whole video: its segments' encoding and the join
    _describe(report, encode, len(parts))
    if len(todo) < len(parts):
        report.streams.append(f"video: {len(parts) - len(todo)} of {len(parts)} segments kept from an interrupted run")
    shutil.rmtree(folder, ignore_errors=True)
    return report


_log = logging.getLogger("algnet_cli.cluster")


def run_key(pool: WorkerPool) -> dict:
    """What, besides the source, cut and encoder, changes a segment's frames: the model (by its sha256
    and configuration) and how it runs (test-time converter, precision, scan kernel, tiles, strength),
    as the workers report them once their model is in."""
    described = pool.described or {}
    model = described.get("model") or {}
    return {
        "model": [model.get("sha256"), model.get("config"), model.get("tlc")],
        "run": [described.get(k) for k in ("precision", "scan_backend", "tiling", "strength")],
    }


def _prepare_folder(job: Job, encode, segments: list[Segment], run: dict, fresh: bool = False):
    """The segments folder and the cut to encode. An earlier run's folder is reused, with its own cut,
    when its source, encoding, model and run settings are this run's: the cut depends on how many
    workers the cluster had, and a rerun on fewer or more keeps what was finished. The folder is
    emptied when any of those differ, or when the run replaces what is there (``fresh``: --overwrite)."""
    folder = segments_folder(job.dst)
    st = job.src.stat()
    key = {
        "source": str(job.src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "encode": [encode.codec, encode.crf, encode.pix_fmt],
        "parts": SEGMENT_SUFFIX + "+timing",  # how a segment is stored
        **run,
    }
    manifest = folder / "manifest.json"
    try:
        before = json.loads(manifest.read_text())
    except (OSError, ValueError):
        before = None
    earlier = _earlier_cut(before) if isinstance(before, dict) and not fresh else None
    if earlier is not None and {k: before.get(k) for k in key} == key:
        return folder, earlier
    if isinstance(before, dict) and not fresh and any(folder.glob("*.timing.json")):
        changed = sorted(k for k in key if before.get(k) != key[k]) or ["segments"]
        _log.warning("%s: the segments of an earlier run are not reused: its %s differ", job.src, ", ".join(changed))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    manifest.write_text(json.dumps({**key, "segments": [[s.start, s.end, s.frames] for s in segments]}))
    return folder, segments


def _earlier_cut(manifest: dict) -> list[Segment] | None:
    """The segments an earlier run's manifest lists, or None where it lists none that can be read."""
    try:
        cut = [Segment(i, start, end, int(frames)) for i, (start, end, frames) in enumerate(manifest["segments"])]
    except (KeyError, TypeError, ValueError):
        return None
    ok = all(isinstance(b, (int, type(None))) for s in cut for b in (s.start, s.end))
    return cut if cut and ok else None


def _describe(report: VideoReport, encode, parts: int) -> None:
    """What the join cannot read off the segments: the encoder by name, and how the video was made.
    (Size, rate and rotation are the source's, set by the join.)"""
    from ..video import encoder_name
    from ..video.containers import codec_for

    report.codec = encoder_name(codec_for(encode, Path(report.output)).codec)
    report.streams.append(f"video: {parts} keyframe segments, encoded on the cluster's workers")
