"""The driver's scheduler on a stand-in for Ray: what it does when Ctrl-C lands while a task is being started."""

import os
import signal
from collections import deque

import pytest

from algnet_cli import interrupts
from algnet_cli.cluster.driver import schedule


class _Exceptions:
    class RayError(Exception):
        pass

    class RayActorError(RayError):
        pass


class _Ray:
    """Tasks finish as soon as they are started; wait() hands back the started ones."""

    exceptions = _Exceptions

    def __init__(self):
        self.results = {}

    def wait(self, refs, num_returns=1, timeout=None):
        done = [r for r in refs if r in self.results][:num_returns]
        return done, [r for r in refs if r not in done]

    def get(self, ref):
        return self.results[ref]


class _Pool:
    def __init__(self, workers):
        self.ray = _Ray()
        self.idle = deque(range(workers))
        self.starting = {}
        self.busy = 0
        self.options = type("O", (), {"max_crashes": 2})()

    def poll(self, timeout=0.0):
        pass

    def take(self):
        self.busy += 1
        return self.idle.popleft()

    def give_back(self, actor):
        self.busy -= 1
        self.idle.append(actor)


@pytest.mark.parametrize("at", [0, 1, 2])
def test_ctrl_c_while_a_task_starts_still_waits_for_that_task(at):
    """The task being started when Ctrl-C arrives is running on its worker: the driver waits for it
    (and reports it) before it stops, instead of leaving its worker to be killed mid-write."""
    pool = _Pool(workers=4)
    started, finished = [], []

    def submit(actor, task):
        ref = object()
        pool.ray.results[ref] = task * 10
        started.append(task)
        if task == at:  # the signal lands after the worker has the task, before the driver notes it
            os.kill(os.getpid(), signal.SIGINT)
        return ref

    with interrupts.routed(), pytest.raises(KeyboardInterrupt):
        schedule(pool, list(range(6)), submit, lambda i, r: finished.append(r), lambda i, why: None)
    assert started == list(range(at + 1))  # nothing new started after the interrupt
    assert sorted(finished) == [t * 10 for t in started]  # and every started task was waited for
    assert pool.busy == 0


def test_segments_of_another_model_or_run_settings_are_never_reused(tmp_path):
    """An interrupted cluster video's segments are kept for a rerun only when everything that changes
    their frames is the same: the model (sha256, configuration, converter) and how it runs (precision,
    scan kernel, tiles, strength); --overwrite (``fresh``) always starts afresh. The cut itself is the
    earlier run's, whatever the cluster's size now."""
    from types import SimpleNamespace

    from algnet_cli.cluster.videos import _prepare_folder, run_key
    from algnet_cli.video import EncodeOptions

    src = tmp_path / "clip.mp4"
    src.write_bytes(b"a video")
    job = SimpleNamespace(src=src, dst=tmp_path / "out" / "clip.mp4")
    segments = [SimpleNamespace(start=0, end=10, frames=10), SimpleNamespace(start=10, end=20, frames=10)]

    def described(sha="a" * 64, strength=1.0, precision="fp32", tile="auto"):
        model = {"sha256": sha, "config": {"width": 16}, "tlc": [256, 256]}
        return {"model": model, "precision": precision, "scan_backend": "fused",
                "tiling": {"tile": tile, "overlap": 32}, "strength": strength}  # fmt: skip

    def kept(run: dict, fresh: bool = False, cut=segments) -> bool:
        folder, used = _prepare_folder(job, EncodeOptions(), cut, run_key(SimpleNamespace(described=run)), fresh)
        there = (folder / "00000.nut").exists()
        assert [(s.start, s.end, s.frames) for s in used] == [(s.start, s.end, s.frames) for s in segments]
        (folder / "00000.nut").write_bytes(b"a finished segment")
        return there

    assert not kept(described())  # the first run
    assert kept(described())  # the same model and settings: resumed
    for other in (described(sha="b" * 64), described(strength=0.5), described(precision="bf16"), described(tile=512)):
        assert not kept(other)  # another model or setting: never mixed in
        assert not kept(described())  # and back: that run's segments are gone too
    assert not kept(described(), fresh=True)  # --overwrite discards them
    # a rerun on a cluster of another size would cut the video otherwise: the earlier cut is kept, and
    # what was finished with it
    assert kept(described(), cut=[SimpleNamespace(start=0, end=None, frames=20)])


def test_the_driver_pins_the_model_and_workers_refuse_another_file_or_version(tmp_path, monkeypatch):
    """A relative --model is sent to the workers as the driver's absolute path, with its sha256 and the
    driver's algnet-cli version; a worker that loads another file (another node's file of that name) or
    runs another version refuses, with the reason."""
    from types import SimpleNamespace

    ray = pytest.importorskip("ray")
    from helpers.cli import write_tiny_checkpoint

    from algnet_cli import __version__
    from algnet_cli.cluster.executor import pin_model
    from algnet_cli.cluster.worker import DeblurWorker
    from algnet_cli.errors import AlgnetError
    from algnet_cli.fileio import sha256_file

    ours = write_tiny_checkpoint(tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    pinned = pin_model({"model": "m.safetensors", "device": "cpu"})
    assert pinned["model"] == str(ours.absolute()) and pinned["sha256"] == sha256_file(ours)
    assert pinned["driver_version"] == __version__
    assert pin_model({"model": "default"})["model"] == "default"  # a name: each node's registry resolves it

    context = SimpleNamespace(get_node_id=lambda: "node", get_actor_id=lambda: "actor")
    monkeypatch.setattr(ray, "get_runtime_context", lambda: context)  # the worker's place, without Ray running
    assert DeblurWorker(pinned).where()["device"] == "cpu"
    other = write_tiny_checkpoint(tmp_path / "elsewhere" / "m.safetensors", seed=4)  # same name, other weights
    with pytest.raises(AlgnetError, match="not the driver's"):
        DeblurWorker(dict(pinned, model=str(other))).where()
    with pytest.raises(AlgnetError, match=f"runs algnet-cli {__version__}, the driver 0.0.1"):
        DeblurWorker(dict(pinned, driver_version="0.0.1")).where()


def test_storage_a_worker_cannot_see_is_named_before_any_work_and_outputs_are_checked(tmp_path):
    """Workers read the inputs and write the outputs themselves: a worker that does not see the inputs
    or the output folder is a usage error naming its host and the path, before any work; an output a
    worker reports written that the driver does not see is a failure, not a file counted done."""
    from types import SimpleNamespace

    from PIL import Image

    from algnet_cli.batch import Request
    from algnet_cli.batch import plan as make_plan
    from algnet_cli.batch.plan import OutputOptions
    from algnet_cli.batch.record import FileResult
    from algnet_cli.cluster.driver import schedule_images
    from algnet_cli.cluster.executor import check_shared_storage
    from algnet_cli.errors import UsageError

    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    plan = make_plan(Request((str(tmp_path / "in"),), output=OutputOptions(tmp_path / "out")))

    def pool_whose_worker_sees(sees):
        actor = SimpleNamespace(sees=SimpleNamespace(remote=lambda paths: [sees(p) for p in paths]))
        return SimpleNamespace(ray=SimpleNamespace(get=lambda ref: ref), idle=deque([actor]),
                               place_of={id(actor): {"host": "node7"}})  # fmt: skip

    check_shared_storage(pool_whose_worker_sees(os.path.exists), plan)  # shared: no complaint
    with pytest.raises(UsageError, match=r"worker on node7 does not see the input .*a\.png"):
        check_shared_storage(pool_whose_worker_sees(lambda p: "out" not in p and False), plan)
    with pytest.raises(UsageError, match=r"worker on node7 does not see the output folder .*out"):
        check_shared_storage(pool_whose_worker_sees(lambda p: "/out/" not in p), plan)
    assert list((tmp_path / "out").iterdir()) == []  # the driver's probes are gone

    pool = _Pool(1)

    def image(job, options):  # the worker says done, but wrote where the driver does not see
        ref = object()
        pool.ray.results[ref] = FileResult(str(job.src), str(job.dst), "done", place={"host": "node7"})
        return ref

    pool.idle = deque([SimpleNamespace(image=SimpleNamespace(remote=image))])
    [r] = schedule_images(pool, plan.images, OutputOptions(tmp_path / "out"), lambda r: None)
    assert r.status == "failed" and "node7 wrote" in r.error and "shares at the same path" in r.error


@pytest.mark.parametrize(
    "cpus, workers, expected",
    [([1, 1], 1, 1), ([1, 1], None, 1), ([4, 4], 1, 4), ([4, 4], None, 4), ([8, 2], 2, 5), ([2], 4, 1)],
)
def test_a_cpu_worker_asks_for_no_more_cpus_than_one_node_has(cpus, workers, expected):
    """Each CPU worker reserves its share of the cluster's CPUs, but never more than the largest node
    has: one worker on two one-CPU nodes asked for two CPUs and waited for a node that never came."""
    from types import SimpleNamespace

    from algnet_cli.cluster.connect import ClusterOptions
    from algnet_cli.cluster.driver import WorkerPool

    asked = []

    class _Actor:
        def options(self, **kw):
            asked.append(kw)
            return SimpleNamespace(remote=lambda *a: SimpleNamespace(where=SimpleNamespace(remote=lambda: object())))

    ray = SimpleNamespace(
        cluster_resources=lambda: {"CPU": float(sum(cpus))},
        nodes=lambda: [{"Alive": True, "Resources": {"CPU": float(c)}} for c in cpus] + [{"Alive": False}],
        remote=lambda cls: _Actor(),
    )
    pool = WorkerPool(ray, {"model": "m", "device": "cpu"}, ClusterOptions("local", workers))
    assert pool.size == (workers or len(cpus)) and asked == [{"max_restarts": 0, "num_cpus": expected}]
