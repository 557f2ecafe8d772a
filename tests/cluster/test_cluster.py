"""The same `algnet deblur` job on a Ray cluster: two nodes in one process, CPU workers, one cluster for all."""

import contextlib
import json
import os
import shutil
import signal
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.cli import hold_after, start_deblur, write_tiny_checkpoint
from helpers.cli import run_deblur_process as run_deblur  # the driver: Ray stays out of the test process
from helpers.videos import decoded_frames, make_video, stream_packets
from PIL import Image
from skimage import data

from algnet_cli.api import Deblurrer
from algnet_cli.fileio import TEMP_PREFIX, sha256_file
from algnet_cli.images import read_image
from algnet_cli.video import probe

ray = pytest.importorskip("ray")

# the tests share a test cluster per pytest worker, in two groups of about equal time, so that two workers
# each take half (each group starts its own two-node cluster)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="ray-cluster-a")]
OTHER_HALF = pytest.mark.xdist_group(name="ray-cluster-b")


@pytest.fixture(autouse=True)
def _one_thread_drivers(monkeypatch):
    """The runs these tests start (cluster drivers, and the single-machine runs they are compared with)
    run one torch thread, so the workers do too: two test clusters share this machine's two cores. The
    byte-for-byte comparison with a default run lifts it."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A two-node Ray cluster: two `ray start` processes, one CPU each, ended by their process ids once
    this module's tests are done (an idle cluster still takes a tenth of a core from the tests after)."""
    import tempfile

    from helpers.raycluster import RayStartCluster

    # Ray's sockets live under its folder, and a socket path holds at most 107 bytes: a short one
    tmp = Path(tempfile.mkdtemp(prefix="algnet-ray-"))
    (tmp / "ray").mkdir()
    os.environ["RAY_TMPDIR"] = str(tmp)  # Ray's files in the test's temporary folder, not /tmp/ray
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a local test cluster only
    c = RayStartCluster(tmp)
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _one_machine(*args):
    """The single-machine run to compare with: a plain run in its own process, with the same environment
    as the cluster's driver (the workers run as many torch threads as the driver's run does)."""
    return run_deblur(*args)


def _photos(folder, n, size=96, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    src = data.astronaut()
    for i in range(start, start + n):
        crop = src[7 * i : 7 * i + size, 11 * i : 11 * i + size]
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"p{i:02d}.png")


def _temps(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Good images (8-bit PNG, 16-bit TIFF), a bad one, a short H.264 video (B-frames, a variable
    frame rate, a keyframe every 5 frames) with audio, and an FFV1 video with a single keyframe (not cut:
    its frames are streamed through the workers)."""
    folder = tmp_path_factory.mktemp("mixed") / "in"
    _photos(folder, 3, size=64)
    Image.fromarray(data.astronaut()[:40, :56, 0].astype(np.uint16) * 200).save(folder / "deep.tif")
    (folder / "bad.png").write_bytes(b"not an image at all")
    pts = [i * 40 + (20 if i % 3 == 0 else 0) for i in range(15)]
    options = {"g": "5", "keyint_min": "5", "bf": "2", "sc_threshold": "0"}
    make_video(folder / "clip.mkv", 48, 32, pts, time_base=Fraction(1, 1000), audio="aac", options=options)
    make_video(folder / "one_gop.mkv", 48, 32, [i * 40 for i in range(7)], codec="ffv1", pix_fmt="bgr0", audio=None)
    return folder


def test_a_cluster_run_gives_the_single_machine_outputs(tmp_path, cluster, checkpoint, mixed, monkeypatch):
    """Byte for byte, against a plain run in its own process with torch's default threads (the workers
    then run as many; with one each, convolutions rounded in another order and outputs differed)."""
    monkeypatch.delenv("OMP_NUM_THREADS")
    one, many = tmp_path / "one", tmp_path / "many"
    lossless = ("--codec", "ffv1")  # so that the video's frames can be compared bit for bit too
    r1 = _one_machine(mixed, "-o", one, "--model", checkpoint, "-q", *lossless)
    r2 = run_deblur(mixed, "-o", many, "--model", checkpoint, "-q", *lossless, "--cluster", cluster.address)
    assert r1.returncode == r2.returncode == 1, r2.stderr
    assert "bad.png" in r2.stderr and "not an image in a format algnet reads" in r2.stderr
    for name in ("p00.png", "p01.png", "p02.png", "deep.tif"):
        assert (one / name).read_bytes() == (many / name).read_bytes(), name
    frames_one, frames_many = decoded_frames(one / "clip.mkv"), decoded_frames(many / "clip.mkv")
    assert len(frames_one) == len(frames_many) == 15
    assert all(np.array_equal(a, b) for a, b in zip(frames_one, frames_many))
    assert probe(many / "clip.mkv")["pts"] == probe(one / "clip.mkv")["pts"] == probe(mixed / "clip.mkv")["pts"]
    assert stream_packets(many / "clip.mkv")[1:] == stream_packets(one / "clip.mkv")[1:]  # the audio, as copied
    a, b = decoded_frames(one / "one_gop.mkv"), decoded_frames(many / "one_gop.mkv")
    assert len(a) == len(b) == 7 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert probe(many / "one_gop.mkv")["pts"] == probe(mixed / "one_gop.mkv")["pts"]
    rec_one = json.loads((one / "algnet-run.json").read_text())
    rec_many = json.loads((many / "algnet-run.json").read_text())
    assert [(f["input"], f["status"]) for f in rec_many["files"]] == [
        (f["input"], f["status"]) for f in rec_one["files"]
    ]
    workers = {f["worker"] for f in rec_many["files"]}
    assert all(f["node"] and f["worker"] for f in rec_many["files"]) and len(workers) == 2
    assert len(rec_many["cluster"]["workers"]) == 2
    videos = {Path(v["input"]).name: v for v in rec_many["videos"]}
    assert videos["clip.mkv"]["frames"] == 15 and videos["one_gop.mkv"]["frames"] == 7
    assert any("keyframe segments" in s for s in videos["clip.mkv"]["streams"])  # cut
    assert not any("keyframe segments" in s for s in videos["one_gop.mkv"].get("streams", []))  # streamed
    assert not list(many.glob(".*algnet-segments*"))
    # resumed: every finished output is kept as it is, and only the bad file is tried again
    before = {p.name: p.stat().st_mtime_ns for p in many.iterdir()}
    r3 = run_deblur(mixed, "-o", many, "--model", checkpoint, "-q", *lossless, "--cluster", cluster.address)
    assert r3.returncode == 1
    rec = json.loads((many / "algnet-run.json").read_text())
    assert sorted(f["status"] for f in rec["files"]) == ["failed"] + ["skipped"] * 4
    assert [v["status"] for v in rec["videos"]] == ["skipped"] * 2
    assert all(p.stat().st_mtime_ns == before[p.name] for p in many.iterdir() if p.name != "algnet-run.json")


@OTHER_HALF
def test_frames_out_streams_the_frames_through_the_workers_as_one_machine_writes_them(tmp_path, cluster, checkpoint):
    """--frames-out is not cut in segments: its frames go to the workers one by one (a video with a
    single keyframe, streamed the same way, is in the first test)."""
    src = tmp_path / "one_gop.mkv"
    make_video(src, 48, 32, [i * 40 for i in range(7)], codec="ffv1", pix_fmt="bgr0", audio=None)
    one, many = tmp_path / "one", tmp_path / "many"
    assert _one_machine(src, "--model", checkpoint, "-q", "--frames-out", one / "f").returncode == 0
    r = run_deblur(src, "--model", checkpoint, "-q", "--cluster", cluster.address, "--frames-out", many / "f")
    assert r.returncode == 0, r.stderr
    frames = sorted(p.name for p in (one / "f" / "one_gop").glob("*.png"))
    assert len(frames) == 7 and frames == sorted(p.name for p in (many / "f" / "one_gop").glob("*.png"))
    for name in frames:
        assert (one / "f" / "one_gop" / name).read_bytes() == (many / "f" / "one_gop" / name).read_bytes()


@OTHER_HALF
def test_a_lost_node_costs_no_output(tmp_path, cluster, checkpoint):
    _photos(tmp_path / "in", 8, size=160)
    out = tmp_path / "out"
    run = start_deblur(tmp_path / "in", "-o", out, "--model", checkpoint, "--cluster", cluster.address)
    try:
        hold_after(run, 1)  # the driver held with one file done: the node goes with work left
        left = 8 - len(list(out.glob("*.png")))
        worker_node = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
        cluster.remove_node(worker_node)
        run.send_signal(signal.SIGCONT)
        assert left > 0, "every file was done before the node went: the test proves nothing"
        rest = run.stderr.read()
        assert run.wait(timeout=240) == 0, rest
    finally:
        if run.poll() is None:
            run.kill()
        cluster.add_node(num_cpus=1)  # for the tests after this one
        cluster.wait_for_nodes()
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i:02d}.png" for i in range(8)]
    rec = json.loads((out / "algnet-run.json").read_text())
    assert [f["status"] for f in rec["files"]] == ["done"] * 8 and not _temps(out)
    for p in out.glob("*.png"):
        read_image(p)
    # the loss is said in one line of ours; nothing of Ray's own logs reaches the terminal
    assert [ln for ln in rest.splitlines() if ln.strip() and not ln.startswith("algnet: ")] == [], rest
    assert len([ln for ln in rest.splitlines() if "worker was lost" in ln]) <= 1  # one worker on that node


@OTHER_HALF
def test_sigint_to_the_driver_leaves_no_partial_file_and_a_rerun_finishes(tmp_path, cluster, checkpoint):
    _photos(tmp_path / "in", 8, size=160)
    out = tmp_path / "out"
    run = start_deblur(tmp_path / "in", "-o", out, "--model", checkpoint, "--cluster", cluster.address)
    hold_after(run, 1)  # the driver held with one file done; the workers finish what they hold
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGCONT)
    assert run.wait(timeout=120) == 130
    done = sorted(p.name for p in out.glob("*.png"))
    assert 0 < len(done) < 8 and not _temps(out)
    for name in done:
        read_image(out / name)  # complete files only
    r = run_deblur(tmp_path / "in", "-o", out, "--model", checkpoint, "-q", "--cluster", cluster.address)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "algnet-run.json").read_text())
    assert sum(f["status"] == "skipped" for f in rec["files"]) == len(done)
    assert len(list(out.glob("*.png"))) == 8


def test_an_interrupted_video_resumes_from_its_finished_segments(tmp_path, cluster, checkpoint):
    src = tmp_path / "in" / "long.mp4"
    src.parent.mkdir()
    pts = [i * 40 for i in range(32)]
    make_video(src, 160, 120, pts, audio="aac", options={"g": "4", "keyint_min": "4", "sc_threshold": "0"})
    out = tmp_path / "out"
    folder = out / ".long.mp4.algnet-segments"
    run = start_deblur(src, "-o", out, "--model", checkpoint, "--cluster", cluster.address)
    hold_after(run, 1)  # the driver held once a first segment's frames are counted: the join is still ahead
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGCONT)
    assert run.wait(timeout=120) == 130
    kept = list(folder.glob("0*.timing.json"))  # a segment is finished once its timestamps are written
    assert kept and not (out / "long.mp4").exists() and not _temps(out)
    interrupted = json.loads((out / "algnet-run.json").read_text())  # the interrupted run has its record
    assert interrupted["status"] == "interrupted"
    (video,) = interrupted["videos"]
    assert video["status"] == "partial" and any("segments kept in" in p for p in video["problems"]), video
    # rerun with one worker, where the first run had two: it would cut the video in fewer segments,
    # and keeps the earlier cut with what was finished of it (notes shown)
    r = run_deblur(src, "-o", out, "--model", checkpoint, "--cluster", cluster.address, "--cluster-workers", "1")
    assert r.returncode == 0, r.stderr
    assert probe(out / "long.mp4")["pts"] == probe(src)["pts"] and not folder.exists()
    rec = json.loads((out / "algnet-run.json").read_text())["videos"][0]
    # at least those listed after the interrupt (a worker's segment may land after the driver has gone)
    said = [s for s in rec["streams"] if "kept from an interrupted run" in s]
    assert said and int(said[0].split("video: ")[1].split(" of ")[0]) >= len(kept), (kept, said, r.stderr[-2000:])


def _timing(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts, rate = sorted(p.pts for p in c.demux(v) if p.size), v.average_rate
    with av.open(str(path)) as c:
        return pts, rate, [(p.pts, p.dts) for p in c.demux(audio=0) if p.size]


@OTHER_HALF
def test_cluster_videos_keep_every_timestamp_of_one_machine(tmp_path, cluster, checkpoint):
    """Keyframes that do not divide the frame count, 24 fps in MP4's 1/12288, 30000/1001 fps in Matroska's
    milliseconds, B-frames and AAC: the joined outputs carry the single-machine timestamps exactly. And
    MPEG-TS, which seeks imprecisely: its segments do not decode as indexed, so the driver streams its
    frames through the workers instead, and the output is the single machine's too."""
    src = tmp_path / "in"
    src.mkdir()
    keys = {"g": "10", "keyint_min": "10", "sc_threshold": "0"}
    make_video(
        src / "a.mp4", 128, 96, [i * 512 for i in range(36)], time_base=Fraction(1, 12288), rate=24, options=keys
    )
    ntsc = Fraction(30000, 1001)
    pts = [round(i / ntsc * 1000) for i in range(90)]
    keys = {"g": "9", "keyint_min": "9", "sc_threshold": "0"}
    make_video(src / "b.mkv", 64, 48, pts, time_base=Fraction(1, 1000), rate=ntsc, options=keys)
    keys = {"g": "7", "keyint_min": "7", "sc_threshold": "0"}
    tb = Fraction(1, 90000)
    make_video(src / "clip.ts", 64, 48, [i * 3600 for i in range(40)], time_base=tb, options=keys, audio=None)
    one, many = tmp_path / "one", tmp_path / "many"
    assert _one_machine(src, "-o", one, "--model", checkpoint, "-q").returncode == 0
    r = run_deblur(src, "-o", many, "--model", checkpoint, "-q", "--cluster", cluster.address)
    assert r.returncode == 0, r.stderr
    for name, frames in (("a.mp4", 36), ("b.mkv", 90)):
        joined, whole = _timing(many / name), _timing(one / name)
        assert joined == whole and len(joined[0]) == frames and joined[2], name
    (ts,) = [p.name for p in one.iterdir() if p.stem == "clip"]
    assert probe(many / ts)["pts"] == probe(one / ts)["pts"] and len(probe(one / ts)["pts"]) == 40
    assert not list(many.glob(".*algnet-segments*"))
    videos = {Path(v["input"]).name: v for v in json.loads((many / "algnet-run.json").read_text())["videos"]}
    assert all(any("keyframe segments" in s for s in videos[n]["streams"]) for n in ("a.mp4", "b.mkv"))  # cut
    assert videos["clip.ts"]["status"] == "done"
    assert not any("keyframe segments" in s for s in videos["clip.ts"].get("streams", []))  # streamed
    assert all(v["seconds"] > 0.1 for v in videos.values())  # the whole video's time, segments and join
    said = next(ln for ln in r.stderr.splitlines() if "cannot be cut at its keyframes" in ln)
    assert said.count("segment ") == 1 and said.count("clip.ts") == 1, said  # each named once


def _segments_of_an_earlier_run(src, out, model, restore):
    """The segments an interrupted run of ``model`` on the video ``src`` left in ``out``, keyed as the
    workers key them (by what the model's worker describes), each frame passed through ``restore``."""
    from types import SimpleNamespace

    from algnet_cli.api import Deblurrer
    from algnet_cli.cluster.videos import SEGMENTS_PER_WORKER, _prepare_folder, run_key
    from algnet_cli.video import EncodeOptions
    from algnet_cli.video.segments import SEGMENT_SUFFIX, encode_segment, index_segments

    job = SimpleNamespace(src=src, dst=out / src.name)
    pool = SimpleNamespace(described=Deblurrer(str(model), device="cpu").describe_run())
    segments = index_segments(job.src, SEGMENTS_PER_WORKER * 2)
    folder, segments = _prepare_folder(job, EncodeOptions(), segments, run_key(pool))
    parts = [folder / f"{s.index:05d}{SEGMENT_SUFFIX}" for s in segments]
    for s, part in zip(segments, parts):
        encode_segment(job.src, s, part, restore, joined_into=job.dst)
    return folder, parts


def _frames_are_the_models_not_the_negatives(made, source):
    """Frames of a tiny, nearly identity model: each nearer its source frame than the negative an
    earlier run's segments were made of."""
    assert len(made) == len(source) > 0
    for a, b in zip(made, source):
        assert np.abs(a.astype(int) - b).mean() < np.abs(a.astype(int) - (255 - b)).mean()


def test_a_join_that_fails_fails_that_video_alone_and_keeps_its_segments(tmp_path, cluster, checkpoint):
    """Segments of an earlier run: one of them damaged on disk fails that video's join alone, and the
    rest are kept for the rerun; those another model made are never mixed into this model's video."""
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 1, size=64)
    keys = {"g": "5", "keyint_min": "5", "sc_threshold": "0"}
    make_video(src / "clip.mp4", 48, 32, [i * 40 for i in range(20)], options=keys)
    make_video(src / "other.mp4", 48, 32, [i * 40 for i in range(20)], options=keys)

    # made by the same model, run as the workers run it (what keys the segments besides the cut), one of
    # them damaged on disk since
    folder, parts = _segments_of_an_earlier_run(src / "clip.mp4", out, checkpoint, lambda f: f)
    parts[1].write_bytes(parts[1].read_bytes()[:300])
    # made by another model (negatives, so that any of them in the output would show)
    other_model = write_tiny_checkpoint(tmp_path / "other.safetensors", seed=4)
    _segments_of_an_earlier_run(src / "other.mp4", out, other_model, lambda f: 255 - f)
    r = run_deblur(src, "-o", out, "--model", checkpoint, "-q", "--cluster", cluster.address)
    assert r.returncode == 1 and "internal error" not in r.stderr
    assert "clip.mp4" in r.stderr and "00001.nut" in r.stderr and "a rerun encodes this segment again" in r.stderr
    rec = json.loads((out / "algnet-run.json").read_text())
    videos = {Path(v["input"]).name: v for v in rec["videos"]}
    assert [f["status"] for f in rec["files"]] == ["done"] and videos["clip.mp4"]["status"] == "failed"
    assert not (out / "clip.mp4").exists() and not _temps(out)
    assert all(p.exists() for p in parts)  # kept for the rerun
    # the other model's segments: none kept, every frame this model's (theirs are negatives)
    assert videos["other.mp4"]["status"] == "done"
    assert not any("kept" in s for s in videos["other.mp4"]["streams"]), videos["other.mp4"]
    assert len(decoded_frames(src / "other.mp4")) == 20
    _frames_are_the_models_not_the_negatives(decoded_frames(out / "other.mp4"), decoded_frames(src / "other.mp4"))
    r = run_deblur(src, "-o", out, "--model", checkpoint, "-q", "--cluster", cluster.address)
    assert r.returncode == 0, r.stderr
    assert probe(out / "clip.mp4")["pts"] == probe(src / "clip.mp4")["pts"] and not folder.exists()
    videos = {Path(v["input"]).name: v for v in json.loads((out / "algnet-run.json").read_text())["videos"]}
    assert any(f"{len(parts) - 1} of {len(parts)} segments kept" in s for s in videos["clip.mp4"]["streams"])


def test_a_file_that_keeps_killing_workers_is_named_as_failed(tmp_path, cluster, checkpoint):
    from algnet_cli.batch import Job, OutputOptions
    from algnet_cli.cluster import ClusterOptions
    from algnet_cli.cluster.driver import WorkerPool, schedule_images
    from algnet_cli.cluster.worker import DeblurWorker

    class DiesOnPoison(DeblurWorker):  # defined here, so Ray ships it by value
        def image(self, job, options):
            if "poison" in job.src.name:
                os._exit(1)
            return super().image(job, options)

    _photos(tmp_path / "in", 3, size=48)
    (tmp_path / "in" / "p01.png").rename(tmp_path / "in" / "poison.png")
    jobs = [Job(p, tmp_path / "out" / p.name) for p in sorted((tmp_path / "in").iterdir())]
    ray.init(address=cluster.address)
    try:
        pool = WorkerPool(ray, {"model": str(checkpoint), "device": "cpu"}, ClusterOptions(max_crashes=2), DiesOnPoison)
        pool.wait_ready()
        results = schedule_images(pool, jobs, OutputOptions(tmp_path / "out"), lambda r: None)
    finally:
        ray.shutdown()
    status = {os.path.basename(r.input): r for r in results}
    assert status["poison.png"].status == "failed" and "crashed 2 workers" in status["poison.png"].error
    assert status["p00.png"].status == status["p02.png"].status == "done"
    assert not _temps(tmp_path / "out")


def test_a_model_no_worker_can_load_is_one_line(tmp_path, cluster):
    _photos(tmp_path / "in", 1, size=48)
    missing = tmp_path / "missing.safetensors"
    r = run_deblur(tmp_path / "in", "-o", tmp_path / "out", "--model", missing, "--cluster", cluster.address)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("algnet:")]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    # resolved on the driver first: refused before any worker starts, the file named
    assert f"{missing}: no such file" in lines[0]
    assert not (tmp_path / "out" / "p00.png").exists()


@OTHER_HALF
def test_the_record_is_described_without_a_live_worker():
    """The driver keeps the first ready worker's description: when the last worker has died, the
    summary and the run record are still written, at once."""
    from algnet_cli.cluster.driver import WorkerPool

    pool = WorkerPool.__new__(WorkerPool)
    pool.described = {"model": {"source": "m.safetensors"}, "device": "cpu"}
    pool.idle, pool.starting, pool.busy = [], {}, 0  # every worker dead, none starting
    pool.options = type("O", (), {"address": "local"})()
    pool.places = {"w1": {"worker": "w1", "host": "h"}}
    pool.model = {"model": "m.safetensors"}
    t0 = time.monotonic()
    info = pool.describe_run()
    assert time.monotonic() - t0 < 1.0
    assert info["model"] == {"source": "m.safetensors"} and info["cluster"]["workers"] == [
        {"worker": "w1", "host": "h"}
    ]


def _descendants(root: int) -> list[int]:
    """The PIDs of ``root``'s descendants, read from /proc (Linux)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [root]
    while todo:
        current = todo.pop()
        kids = [pid for pid, ppid in parent.items() if ppid == current]
        found += kids
        todo += kids
    return found


def _kill_own_workers() -> list[int]:
    """SIGKILL the DeblurWorker actors among this process's own descendants (the test cluster's
    raylets are its children): never another run's workers. Returns their PIDs."""
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::DeblurWorker"):
                    os.kill(pid, signal.SIGKILL)
                    pids.append(pid)
        except (OSError, ProcessLookupError):
            continue
    return pids


@OTHER_HALF
def test_a_run_whose_last_worker_dies_still_writes_its_summary_and_record(tmp_path, cluster, checkpoint):
    import shutil

    _photos(tmp_path / "in", 12, size=200)
    model = tmp_path / "m.safetensors"
    shutil.copy(checkpoint, model)
    out = tmp_path / "out"
    run = start_deblur(tmp_path / "in", "-o", out, "--model", model, "--cluster", cluster.address)
    try:
        hold_after(run, 1)  # the driver held with one file recorded done
        model.unlink()  # no replacement can load the model: once these die, no worker is left
        killed = _kill_own_workers()
        assert killed, "no DeblurWorker among this test's processes"
        run.send_signal(signal.SIGCONT)
        assert run.wait(timeout=240) == 1
        stderr = run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
    rec = json.loads((out / "algnet-run.json").read_text())
    statuses = [f["status"] for f in rec["files"]]
    assert len(statuses) == 12 and "failed" in statuses and "done" in statuses
    assert rec["model"] and rec["cluster"]["workers"]
    assert "failed" in stderr and "algnet-run.json" in stderr and "internal error" not in stderr


@contextlib.contextmanager
def _nodes_that_see_otherwise(cluster, *views):
    """One more node per view, each seeing the disk as another machine would: ``(source, target)``
    mounts of its own (``source`` over ``target``, or nothing where ``source`` is None), the rest of the
    disk shared. Stopped at the end, as an operator stops a node."""
    from helpers.raycluster import own_mounts_unavailable

    why = own_mounts_unavailable()
    if why:
        pytest.skip(f"a node with a view of the disk of its own needs a mount namespace: {why}")
    nodes = []
    try:
        for view in views:  # one at a time: nodes of one machine that start together collide
            nodes.append(cluster.add_node(mounts=view))
            cluster.wait_for_nodes()
        yield nodes
    finally:
        for node in nodes:
            cluster.end_node(node)


@OTHER_HALF
def test_workers_with_another_file_of_the_models_name_or_another_version_are_refused(tmp_path, cluster, checkpoint):
    """A relative --model, on a cluster where one node has other weights under that name and one runs
    another algnet-cli: both workers refuse, each named in a line of its own, and the others do the
    run with the driver's model. --overwrite: segments an earlier run of this model left (negatives,
    that would be reused on a plain rerun) are discarded, not joined."""
    import algnet_cli

    here = tmp_path / "models"
    model = here / "m.safetensors"
    here.mkdir()
    shutil.copy(checkpoint, model)
    theirs = write_tiny_checkpoint(tmp_path / "theirs.safetensors", seed=4)
    init = Path(algnet_cli.__file__)
    other_version = tmp_path / "__init__.py"
    other_version.write_text(init.read_text().replace(f'"{algnet_cli.__version__}"', '"0.0.0+other"', 1))
    assert '__version__ = "0.0.0+other"' in other_version.read_text()
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 4, size=48)
    keys = {"g": "5", "keyint_min": "5", "sc_threshold": "0"}
    make_video(src / "clip.mp4", 48, 32, [i * 40 for i in range(15)], options=keys)
    folder, _ = _segments_of_an_earlier_run(src / "clip.mp4", out, model, lambda f: 255 - f)
    with _nodes_that_see_otherwise(cluster, [(theirs, model)], [(other_version, init)]):
        args = (src, "-o", out, "--model", "m.safetensors", "--cluster", cluster.address, "--overwrite")
        r = run_deblur(*args, cwd=here)
    assert r.returncode == 0, r.stderr
    refused = [ln for ln in r.stderr.splitlines() if "a worker was not started" in ln]
    assert len(refused) == 2, r.stderr
    assert any(f"the model {model} there is not the driver's" in ln for ln in refused), refused
    assert any(f"runs algnet-cli 0.0.0+other, the driver {algnet_cli.__version__}" in ln for ln in refused), refused
    rec = json.loads((out / "algnet-run.json").read_text())
    assert [f["status"] for f in rec["files"]] == ["done"] * 4
    assert len(rec["cluster"]["workers"]) == 2 and rec["model"]["sha256"] == sha256_file(model)
    ours, other = (Deblurrer(str(m), device="cpu") for m in (model, theirs))
    for i in range(4):
        photo = read_image(src / f"p{i:02d}.png")
        made = read_image(out / f"p{i:02d}.png").astype(int)
        assert np.abs(made - ours.deblur(photo)).max() <= 1
        assert np.abs(made - other.deblur(photo)).max() > 1  # the other weights would show
    (video,) = rec["videos"]
    assert video["status"] == "done" and not any("kept" in s for s in video["streams"]), video
    _frames_are_the_models_not_the_negatives(decoded_frames(out / "clip.mp4"), decoded_frames(src / "clip.mp4"))
    assert not folder.exists()


def _mount_in_view_of(node, target):
    """An empty tmpfs over ``target`` as ``node`` sees it, while it runs: storage that goes away from it."""
    import subprocess

    user = [] if os.geteuid() == 0 else ["-U", "--preserve-credentials"]
    command = ["nsenter", "-t", str(node.proc.pid), *user, "-m", "mount", "-t", "tmpfs", "algnet-test", str(target)]
    subprocess.run(command, check=True, capture_output=True)


def test_storage_a_node_does_not_share_is_named_and_outputs_are_checked_from_the_driver(tmp_path, cluster, checkpoint):
    """A node that does not see the inputs, and one that does not see the output folder (the driver's
    probe written there): each run stops before any work with one line naming the path. The output
    folder gone from that node mid-run: what its worker writes after is a failure naming the reason,
    never a file counted done that the driver does not see."""
    for name in ("in", "in2"):
        _photos(tmp_path / name, 2, size=48)
    _photos(tmp_path / "in3", 8, size=96)
    for name in ("out2", "out3"):
        (tmp_path / name).mkdir()
    with _nodes_that_see_otherwise(cluster, [(None, tmp_path / "in"), (None, tmp_path / "out2")]) as (node,):
        runs = [
            run_deblur(tmp_path / i, "-o", tmp_path / o, "--model", checkpoint, "--cluster", cluster.address)
            for i, o in (("in", "out"), ("in2", "out2"))
        ]
        out = tmp_path / "out3"
        run = start_deblur(tmp_path / "in3", "-o", out, "--model", checkpoint, "--cluster", cluster.address)
        try:
            hold_after(run, 1)  # the driver held with one file done, the workers busy with the next ones
            _mount_in_view_of(node, out)
            run.send_signal(signal.SIGCONT)
            assert run.wait(timeout=240) == 1
        finally:
            if run.poll() is None:
                run.kill()
    for r, what, where in zip(runs, ("input", "output folder"), (tmp_path / "in" / "p00.png", tmp_path / "out2")):
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert f"does not see the {what} {where}:" in lines[0] and "storage every node shares" in lines[0], lines
    assert not list((tmp_path / "out").glob("*")) and not list((tmp_path / "out2").glob("*"))
    files = json.loads((out / "algnet-run.json").read_text())["files"]
    done = sorted(Path(f["output"]).name for f in files if f["status"] == "done")
    assert done == sorted(p.name for p in out.glob("*.png")) and len(done) < 8
    failed = [f["error"] for f in files if f["status"] == "failed"]
    assert len(failed) == 8 - len(done) and all("not there as the driver sees it" in e for e in failed), failed
