"""The cluster as an executor of a plan: image files scheduled over the workers, videos cut into
segments (or their frames streamed), the record described by the driver. The same
:func:`~algnet_cli.batch.execute` as on one machine runs it."""

from __future__ import annotations

from pathlib import Path

from ..batch.plan import Plan, output_folders
from ..batch.record import Outcome
from ..batch.run import Events, execute
from ..batch.videos import run_sequence
from .connect import ClusterOptions, connect
from .driver import ClusterRestorer, WorkerPool, schedule_images
from .videos import run_videos_on, segments_folder


class ClusterExecutor:
    """:class:`~algnet_cli.batch.run.Executor` on a pool of Ray workers."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.restorer = ClusterRestorer(pool)

    def run_images(self, jobs, options, on_result):
        return schedule_images(self.pool, jobs, options, on_result)

    def run_videos(self, plan: Plan, events):
        return run_videos_on(self.pool, plan, events)

    def run_sequence(self, plan: Plan, events):
        return run_sequence(plan, self.restorer, events)

    def describe_run(self) -> dict:
        return self.pool.describe_run()


def pin_model(model: dict) -> dict:
    """The model as the driver resolves it, for the workers: a checkpoint file by its absolute path (a
    relative one would name another file on another node's working folder), and its sha256 and this
    algnet-cli's version, which every worker checks against what it loads and runs."""
    from .. import __version__
    from ..fileio import sha256_file
    from ..hub import find_entry, parse_ref, resolve

    ref = model.get("model", "default")
    if not isinstance(ref, (str, Path)):
        return model
    path = resolve(str(ref), cache=model.get("cache_dir"), offline=model.get("offline"), quiet=True)
    pinned = dict(model, sha256=sha256_file(path), driver_version=__version__)
    if parse_ref(str(ref)) is None and find_entry(str(ref)) is None:  # a file: the same one on every node
        pinned["model"] = str(Path(path).absolute())
    return pinned


def check_shared_storage(pool: WorkerPool, plan: Plan) -> None:
    """Every ready worker sees the first input and a file the driver writes in each output folder, at
    the same paths: a usage error naming the host and the path otherwise, before any work (workers read
    the inputs and write the outputs themselves)."""
    import uuid

    from ..errors import UsageError
    from ..fileio import make_temp

    paths, probes = [], []
    for job in (plan.images[:1] + plan.videos[:1])[:2]:
        paths.append(str(job.src.absolute()))
    for folder in dict.fromkeys(f.absolute() for f in output_folders(plan)):
        folder.mkdir(parents=True, exist_ok=True)
        probe = make_temp(folder / f"shared-{uuid.uuid4().hex[:8]}")
        probes.append(probe)
        paths.append(str(probe))
    try:
        for actor in list(pool.idle):
            seen = pool.ray.get(actor.sees.remote(paths))
            missing = [p for p, ok in zip(paths, seen) if not ok]
            if missing:
                host = pool.place_of.get(id(actor), {}).get("host", "a worker")
                what = "output folder" if missing[0] in map(str, probes) else "input"
                shown = Path(missing[0]).parent if what == "output folder" else missing[0]
                raise UsageError(
                    f"--cluster: the worker on {host} does not see the {what} {shown}: inputs and outputs must be "
                    "on storage every node shares, at the same paths"
                )
    finally:
        for probe in probes:
            probe.unlink(missing_ok=True)


def execute_on_cluster(plan: Plan, model: dict, options: ClusterOptions, events: Events | None = None) -> Outcome:
    """:func:`~algnet_cli.batch.execute` on a Ray cluster: the same plan, outputs, record and exit codes.

    ``model``: the :class:`~algnet_cli.api.Deblurrer` arguments, resolved by each worker on its node.
    """
    model = pin_model(model)  # before Ray starts: a model that cannot be resolved here fails at once
    with connect(options) as ray:
        pool = WorkerPool(ray, model, options)
        pool.output_folders = output_folders(plan) + [segments_folder(j.dst) for j in plan.videos]
        pool.wait_ready()
        check_shared_storage(pool, plan)
        try:
            return execute(plan, ClusterExecutor(pool), events)
        finally:
            pool.clean_up()
