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


def execute_on_cluster(plan: Plan, model: dict, options: ClusterOptions, events: Events | None = None) -> Outcome:
    """:func:`~algnet_cli.batch.execute` on a Ray cluster: the same plan, outputs, record and exit codes.

    ``model``: the :class:`~algnet_cli.api.Deblurrer` arguments, resolved by each worker on its node.
    """
    model = pin_model(model)  # before Ray starts: a model that cannot be resolved here fails at once
    with connect(options) as ray:
        pool = WorkerPool(ray, model, options)
        pool.output_folders = output_folders(plan) + [segments_folder(j.dst) for j in plan.videos]
        pool.wait_ready()
        try:
            return execute(plan, ClusterExecutor(pool), events)
        finally:
            pool.clean_up()
