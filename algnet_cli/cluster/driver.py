"""The cluster's driver: workers started once, image files fed to them, video frames streamed through them.

Images: the driver checks skip-existing, hands each file to an idle worker, and collects its result
(``ray.wait``), so progress is per file. A worker (or its node) lost mid-file: the file goes to
another worker; a file that kills ``max_crashes`` workers is named as failed. Videos: decoded and
cut at keyframes into segments that the workers deblur and encode, then joined here with the other
streams (see :mod:`.videos`); frame folders and --to-video stream their frames through the workers.

An interrupt stops handing out files, lets the files in the workers' hands finish (their writes are
atomic, so nothing half-written is left), and ends the run; rerunning resumes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np

from ..batch.plan import Job, OutputOptions
from ..batch.record import FileResult
from ..errors import AlgnetError, VideoError
from ..interrupts import shielded
from .connect import ClusterOptions
from .worker import DeblurWorker

#: how long to wait for a first worker (model loaded) before giving up
STARTUP_TIMEOUT_S = 600.0


class WorkerPool:
    """The actors: one per GPU, or one per node (all its CPUs) where there are none, or ``workers``."""

    def __init__(self, ray, model: dict, options: ClusterOptions, worker_cls=DeblurWorker):
        self.ray, self.model, self.options = ray, model, options
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if model.get("device") != "cpu" else 0
        alive = [n for n in ray.nodes() if n.get("Alive")]
        nodes = len(alive)
        self.size = options.workers or gpus or max(1, nodes)
        if gpus:
            actor_options, self.threads = {"num_gpus": 1, "num_cpus": 1}, None
            self.model = dict(model, device="cuda")
        else:
            # each CPU worker reserves its share of the CPUs, but runs as many torch threads as one run on
            # this machine does: oneDNN's convolutions round in an order that depends on the thread count,
            # and the outputs must be byte for byte those of a run on one machine (with the same CPU)
            import torch

            self.threads = torch.get_num_threads()
            # a share that one node can give: fewer workers than nodes must not ask for more CPUs than
            # the largest node has (the worker would wait for a node that never comes)
            largest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in alive), default=1)
            share = int(resources.get("CPU", 1)) // self.size
            actor_options = {"num_cpus": max(1, min(share, largest))}
            self.model = dict(model, device="cpu")
        self.remote = ray.remote(worker_cls).options(max_restarts=0, **actor_options)
        self.starting: dict = {}  # where() reference -> actor not yet ready
        self.idle: deque = deque()
        self.busy = 0
        self.places: dict[str, dict] = {}
        self.place_of: dict[int, dict] = {}  # id(actor handle) -> where it runs
        self.dead: list[dict] = []  # places of workers that died
        self.output_folders: list[Path] = []  # where workers write: cleaned of a dead worker's temporaries
        self.start_error: str | None = None
        self.described: dict | None = None  # the first ready worker's description of the run, kept
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        actor = self.remote.remote(self.model, self.threads)
        self.starting[actor.where.remote()] = actor

    def live(self) -> int:
        return len(self.idle) + self.busy

    def poll(self, timeout: float = 0.0) -> None:
        """Move workers whose model is loaded to the idle queue."""
        if not self.starting:
            return
        ready, _ = self.ray.wait(list(self.starting), num_returns=len(self.starting), timeout=timeout)
        for ref in ready:
            actor = self.starting.pop(ref)
            try:
                place = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                if _reason(e) != self.start_error:  # each reason once: a worker refused is not silent
                    logging.getLogger("algnet_cli.cluster").warning("a worker was not started: %s", _reason(e))
                self.start_error = _reason(e)
                self.ray.kill(actor)  # a worker without a model holds its resources for nothing
                continue
            self.places[place["worker"]] = place
            self.place_of[id(actor)] = place
            self.idle.append(actor)
            if self.described is None:  # asked once, while a worker is alive: the record needs no live one
                self.described = self.ray.get(actor.describe_run.remote())

    def wait_ready(self, others_s: float = 30.0) -> None:
        """Until one worker has its model loaded (a model that no worker can load is the user's
        error), then up to ``others_s`` more for the other workers started with it, so that the work
        is spread from the start."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.idle:
            if not self.starting or time.monotonic() > deadline:
                raise AlgnetError(f"no cluster worker could load the model: {self.start_error or 'timed out'}")
            self.poll(timeout=1.0)
        others = time.monotonic() + others_s
        while self.starting and time.monotonic() < others:
            self.poll(timeout=0.5)

    def take(self):
        self.busy += 1
        return self.idle.popleft()

    def give_back(self, actor) -> None:
        self.busy -= 1
        self.idle.append(actor)

    def lost(self, actor) -> None:
        """A worker died (its process, or its node): its temporary files go, and another worker starts
        in its place where there is room."""
        self.busy -= 1
        self.ray.kill(actor)
        place = self.place_of.get(id(actor))
        if place is not None:
            self.dead.append(place)
            self.clean_up()
        self._spawn()

    def clean_up(self) -> None:
        """Remove what dead workers were writing when they died (their temporaries, on shared storage)."""
        from ..fileio import remove_temps_of

        for place in self.dead:
            remove_temps_of(self.output_folders, place["host"], place["pid"])

    def describe_run(self) -> dict:
        """The run as the first ready worker described it, and the cluster's workers; written into the
        record even when no worker is left alive."""
        if self.described is None:
            self.poll()
        info = dict(self.described or {"model": {"source": self.model.get("model")}})
        info["cluster"] = {"address": self.options.address, "workers": list(self.places.values())}
        return info


class ClusterRestorer:
    """Video frames spread over the pool's workers, in order (the restorer the video code takes)."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.batch: dict[tuple[int, int], int] = {}

    def frames_per_batch(self, height: int, width: int) -> int:
        if (height, width) not in self.batch:
            self.pool.wait_ready(others_s=0)
            per_worker = self.pool.ray.get(self.pool.idle[0].frames_per_batch.remote(height, width))
            self.batch[(height, width)] = max(1, per_worker) * self.pool.size
        return self.batch[(height, width)]

    def deblur_many(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size frames in contiguous chunks, one per worker, through :func:`schedule`."""
        chunks = _split(list(range(len(frames))), max(1, self.pool.live() + len(self.pool.starting)))
        out: list[np.ndarray | None] = [None] * len(frames)
        failures: list[tuple[list[int], str]] = []

        def done(k: int, results: list[np.ndarray]) -> None:
            for i, r in zip(chunks[k], results, strict=True):
                out[i] = r

        def submit(actor, chunk: list[int]):
            return actor.frames.remote([frames[i] for i in chunk])

        schedule(self.pool, chunks, submit, done, lambda k, why: failures.append((chunks[k], why)))
        if failures:
            chunk, why = failures[0]
            raise VideoError(f"frames {chunk[0] + 1}-{chunk[-1] + 1}", why)
        return [r for r in out if r is not None]  # every chunk came back: none is left out

    def describe_run(self) -> dict:
        return self.pool.describe_run()


def _split(items: list, parts: int) -> list[list]:
    """``items`` in at most ``parts`` contiguous, nearly equal, non-empty runs."""
    return [list(a) for a in np.array_split(np.array(items, dtype=object), min(parts, len(items))) if len(a)]


def schedule(pool: WorkerPool, tasks: list, submit, on_result, on_failure) -> None:
    """Each task on an idle worker, one at a time per worker: ``submit(actor, task)`` starts it,
    ``on_result(i, result)`` or ``on_failure(i, reason)`` reports task ``i``. A task whose worker dies
    goes to another; one that kills ``max_crashes`` workers fails, and so do the tasks left when no
    worker is alive and none has started within ``STARTUP_TIMEOUT_S``. On an interrupt, nothing new starts
    and the tasks in the workers' hands finish (reported), then KeyboardInterrupt is raised."""
    queue: deque[int] = deque(range(len(tasks)))
    running: dict = {}
    crashes: Counter = Counter()
    idle_since: float | None = None  # when the last worker was lost, while replacements start
    try:
        while queue or running:
            pool.poll()
            while queue and pool.idle:
                # an interrupt between starting a task and noting it would leave the task unwatched: the
                # driver would leave without waiting for it, and its worker be killed mid-write
                with shielded():
                    i = queue.popleft()
                    actor = pool.take()
                    running[submit(actor, tasks[i])] = (i, actor)
            if not running:
                idle_since = idle_since or time.monotonic()
                if not pool.starting or time.monotonic() - idle_since > STARTUP_TIMEOUT_S:
                    for i in queue:
                        on_failure(i, "no cluster worker left to run it")
                    return
                pool.poll(timeout=1.0)
                continue
            idle_since = None
            _collect(pool, running, queue, crashes, on_result, on_failure, timeout=1.0)
    except KeyboardInterrupt:
        while running:
            _collect(pool, running, deque(), crashes, on_result, on_failure, timeout=None)
        raise


def _collect(pool: WorkerPool, running: dict, queue: deque, crashes: Counter, on_result, on_failure, timeout) -> None:
    ray = pool.ray
    done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
    for ref in done:
        i, actor = running.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            pool.lost(actor)
            crashes[i] += 1
            # one line for the user (Ray's own logs of the loss stay in its session folder)
            logging.getLogger("algnet_cli.cluster").warning(
                "a cluster worker was lost (its process or its node went: %s); its file goes to another worker",
                _reason(e),
            )
            if crashes[i] >= pool.options.max_crashes:
                on_failure(i, f"crashed {crashes[i]} workers ({_reason(e)})")
            else:
                queue.appendleft(i)
            continue
        except ray.exceptions.RayError as e:
            pool.give_back(actor)
            on_failure(i, _reason(e))
            continue
        pool.give_back(actor)
        on_result(i, result)


def schedule_images(pool: WorkerPool, jobs: list[Job], options: OutputOptions, on_result) -> list[FileResult]:
    """Every image job on the pool, one file per worker at a time; results in input order."""
    results: dict[int, FileResult] = {}

    def report(i: int, r: FileResult) -> None:
        src, dst = jobs[i].src, jobs[i].dst
        if r.error:  # the worker named the file by its absolute path
            r.error = r.error.replace(str(src.absolute()), str(src)).replace(str(dst.absolute()), str(dst))
        r.input, r.output = str(src), str(dst)  # as the user named them
        if r.status == "done" and not dst.exists():  # written where only that worker's node sees it
            host = (r.place or {}).get("host", "a worker")
            r.status, r.error = (
                "failed",
                (
                    f"{src}: {host} wrote {dst}, but it is not there as the driver sees it: the output folder "
                    "must be on storage that every node shares at the same path"
                ),
            )
        results[i] = r
        on_result(r)

    todo = []
    for i, job in enumerate(jobs):
        if job.action == "skip":
            report(i, FileResult(str(job.src), str(job.dst), "skipped"))
        else:
            todo.append(i)
    absolute = options if options.output is None else _absolute_options(options)

    def submit(actor, i):
        job = Job(
            jobs[i].src.absolute(), jobs[i].dst.absolute(), fmt=jobs[i].fmt
        )  # workers have another working folder
        return actor.image.remote(job, absolute)

    schedule(
        pool,
        todo,
        submit,
        lambda k, r: report(todo[k], r),
        lambda k, why: report(todo[k], _failed(jobs[todo[k]], why)),
    )
    return [results[i] for i in sorted(results)]


def _failed(job: Job, reason: str) -> FileResult:
    return FileResult(str(job.src), str(job.dst), "failed", error=f"{job.src}: {reason}")


def _absolute_options(options: OutputOptions) -> OutputOptions:
    from dataclasses import replace

    return replace(options, output=None if options.output is None else options.output.absolute())


def _reason(e: BaseException) -> str:
    """What went wrong, from the worker's own exception (Ray carries it whole: ours survive pickle);
    for a lost worker, the first line of Ray's message."""
    from ..errors import AlgnetError

    cause, seen = getattr(e, "cause", None), 0
    while (
        isinstance(inner := getattr(cause, "cause", None), BaseException) and seen < 5
    ):  # an actor died of its task's error
        cause, seen = inner, seen + 1
    if isinstance(cause, AlgnetError):
        return getattr(cause, "reason", None) or str(cause)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"[:300]
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    return first[:300] or type(e).__name__
