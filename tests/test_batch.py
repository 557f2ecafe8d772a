"""Planning (names, collisions, the record's place) and running a plan, with a stand-in model."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from algnet_cli.batch import OutputOptions, Request, VideoOptions, execute, plan, run_images
from algnet_cli.errors import UsageError
from algnet_cli.runner import RunReport
from algnet_cli.video import EncodeOptions


def _images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 24, 3), 10 * i, np.uint8)).save(folder / name)


def _request(*inputs, output=None, recursive=False, **kw) -> Request:
    video = {k: kw.pop(k) for k in ("frames_out", "to_video", "container") if k in kw}
    fps = kw.pop("fps", None)
    out = OutputOptions(Path(output) if output else None, **kw)
    return Request(tuple(map(str, inputs)), recursive, out, VideoOptions(EncodeOptions(fps=fps), **video))


def test_images_and_videos_are_planned_together_with_suffix_and_format(tmp_path):
    _images(tmp_path / "in", "b.jpg", "a.png", "sub/c.png")
    (tmp_path / "in" / "clip.mp4").write_bytes(b"")  # planning does not open files
    p = plan(_request(tmp_path / "in", output=tmp_path / "out", recursive=True, fmt="png", suffix="_s"))
    assert [j.dst.relative_to(tmp_path / "out").as_posix() for j in p.images] == ["a_s.png", "b_s.png", "sub/c_s.png"]
    assert [(j.kind, j.dst.name) for j in p.videos] == [("video", "clip_s.mp4")]
    assert p.record_dir == tmp_path / "out"


@pytest.mark.parametrize(
    "names, options, message",
    [
        (["a.png", "a.jpg"], {"fmt": "png"}, "would both be written"),
        (["a.png", "a.mp4"], {"fmt": "keep", "container": None}, None),
        (["a.mkv", "a.mp4"], {"container": "mkv"}, "would both be written"),
    ],
)
def test_two_inputs_for_one_output_are_refused_images_and_videos_alike(tmp_path, names, options, message):
    _images(tmp_path / "in", *[n for n in names if n.endswith(".png")])
    for n in names:
        if not n.endswith(".png"):
            (tmp_path / "in" / n).write_bytes(b"")
    request = _request(tmp_path / "in", output=tmp_path / "out", **options)
    if message is None:
        assert len(plan(request).jobs) == 2
    else:
        with pytest.raises(UsageError, match=message):
            plan(request)


def test_outputs_that_would_overwrite_inputs_are_refused(tmp_path):
    _images(tmp_path, "a.png", "b.png")
    with pytest.raises(UsageError, match="overwrite (an|the) input"):
        plan(_request(tmp_path / "a.png", tmp_path / "b.png", output=tmp_path))
    (tmp_path / "v.mp4").write_bytes(b"")
    with pytest.raises(UsageError, match="overwrite (an|the) input"):
        plan(_request(tmp_path / "v.mp4", output=tmp_path / "v.mp4"))


def test_single_outputs_folders_and_files(tmp_path):
    _images(tmp_path / "in", "a.png", "b.png")
    one = plan(_request(tmp_path / "in" / "a.png", output=tmp_path / "x.tif"))
    assert one.images[0].dst == tmp_path / "x.tif" and one.record_dir == tmp_path
    folder = plan(_request(tmp_path / "in" / "a.png", output=tmp_path / "y.png", folder=True))
    assert folder.images[0].dst == tmp_path / "y.png" / "a.png"
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(UsageError, match="is a file"):
        plan(_request(tmp_path / "in", output=tmp_path / "file.png"))


def test_video_options_are_checked_when_planning(tmp_path):
    _images(tmp_path / "in", "f1.png", "f2.png")
    (tmp_path / "clip.mp4").write_bytes(b"")
    seq = plan(_request(tmp_path / "in", to_video=tmp_path / "v" / "s.mp4", fps=10))
    assert [p.name for p in seq.sequence] == ["f1.png", "f2.png"] and seq.record_dir == tmp_path / "v"
    with pytest.raises(UsageError, match="not videos"):
        plan(_request(tmp_path / "clip.mp4", to_video=tmp_path / "s.mp4"))
    with pytest.raises(UsageError, match="--fps only"):
        plan(_request(tmp_path / "in", output=tmp_path / "o", fps=10))
    with pytest.raises(UsageError, match="--video-format"):
        plan(_request(tmp_path / "clip.mp4", output=tmp_path / "o", container="gif"))
    frames = plan(_request(tmp_path / "clip.mp4", frames_out=tmp_path / "fr"))
    assert [(j.kind, j.dst) for j in frames.videos] == [("frames", tmp_path / "fr" / "clip")]
    assert frames.record_dir == tmp_path / "fr"


class Inverter:
    """A stand-in for Deblurrer: inverts the image, reports two tiles for each image."""

    def __init__(self):
        self.calls = 0

    def run(self, imgs):
        self.calls += 1
        return [255 - i for i in imgs], RunReport(tile=16, tiles=2)

    def frames_per_batch(self, h, w):
        return 1

    def describe_run(self):
        return {"model": {"source": "stand-in"}, "device": "cpu"}


def test_a_run_skips_what_exists_and_its_record_comes_from_the_runner_reports(tmp_path):
    _images(tmp_path / "in", "a.png", "b.png", "c.png")
    (tmp_path / "in" / "d.png").write_bytes(b"not a png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "algnet-run.json").write_text('{"status": "started", "versions": {}, "files": []}')
    (tmp_path / "out" / "b.png").write_bytes(b"an earlier output")  # an interrupted earlier run's
    p = plan(_request(tmp_path / "in", output=tmp_path / "out"))
    model = Inverter()
    outcome = execute(p, model)
    assert [r.status for r in outcome.results] == ["done", "skipped", "done", "failed"]
    assert model.calls == 2 and not outcome.ok and "d.png" in outcome.failed[0].error
    assert (tmp_path / "out" / "b.png").read_bytes() == b"an earlier output"
    a = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert (a == 255).all()  # the first image was all zeros
    record = json.loads(outcome.record.read_text())
    assert record["model"] == {"source": "stand-in"}
    assert [f["tiles"] for f in record["files"]] == [2, 0, 2, 0]
    assert record["files"][0]["size"] == [24, 20]


def test_overwrite_runs_everything_again(tmp_path):
    _images(tmp_path / "in", "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"old")
    p = plan(_request(tmp_path / "in", output=tmp_path / "out", skip_existing=False))
    results = run_images(p.images, Inverter(), p.request.output)
    assert [r.status for r in results] == ["done"] and (tmp_path / "out" / "a.png").read_bytes() != b"old"


class Interrupting(Inverter):
    """Sends this process SIGINT while the model runs, as Ctrl-C would."""

    def run(self, imgs):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)
        return super().run(imgs)


def test_execute_leaves_the_signal_handlers_as_it_found_them_and_every_interrupt_raises(tmp_path):
    import signal

    def mine(signum, frame):
        raise AssertionError("the caller's handler must not run during a run")

    before = signal.signal(signal.SIGINT, mine)
    term = signal.getsignal(signal.SIGTERM)
    try:
        for attempt in range(2):  # a notebook: two interrupted runs in one process
            _images(tmp_path / f"in{attempt}", "a.png", "b.png")
            p = plan(_request(tmp_path / f"in{attempt}", output=tmp_path / f"out{attempt}"))
            with pytest.raises(KeyboardInterrupt):
                execute(p, Interrupting())
            assert signal.getsignal(signal.SIGINT) is mine
        outcome = execute(plan(_request(tmp_path / "in0", output=tmp_path / "out_ok")), Inverter())
        assert outcome.ok and signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGINT, before)


def test_the_plan_decides_once_and_the_dry_run_reads_it(tmp_path):
    from algnet_cli.batch import describe_plan

    _images(tmp_path / "in", "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "algnet-run.json").write_text('{"status": "finished", "versions": {}, "files": []}')
    (tmp_path / "out" / "a.png").write_bytes(b"done before")
    kept = plan(_request(tmp_path / "in", output=tmp_path / "out"))
    again = plan(_request(tmp_path / "in", output=tmp_path / "out", skip_existing=False))
    assert [j.action for j in kept.images] == ["skip"] and [j.action for j in again.images] == ["run"]

    class Runner:
        device, precision_name = "cpu", "fp32"

        def plan_tile(self, h, w):
            return 0

        def estimate_bytes(self, h, w):
            return 1.0

    assert "(exists, skipped)" in "\n".join(describe_plan(kept, Runner()))
    assert "would run again" in "\n".join(describe_plan(again, Runner()))
    results = run_images(again.images, Inverter(), again.request.output)
    assert [r.status for r in results] == ["done"]


def test_every_error_survives_pickle_with_its_message_and_fields():
    import inspect
    import pickle

    from algnet_cli import errors

    made = 0
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if not issubclass(cls, errors.AlgnetError):
            continue
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        named = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        args = [["k1", "k2"] if "missing" in p.name or "unexpected" in p.name or "mismatched" in p.name
                else f"value of {p.name}" for p in named] if named else ["a message"]  # fmt: skip
        e = cls(*args)
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and str(back) == str(e)
        assert {k: v for k, v in vars(back).items()} == {k: v for k, v in vars(e).items()}
        made += 1
    assert made >= 14


def test_a_usage_error_met_during_the_run_exits_2(tmp_path, monkeypatch):
    from algnet_cli.batch import stills
    from algnet_cli.errors import UsageError

    _images(tmp_path / "in", "a.png", "b.png")
    load = stills.load_image

    def picky(job, max_pixels=None, skip_sharp=False):
        if job.src.name == "a.png":
            raise UsageError("an option that cannot work for this file")
        return load(job, max_pixels, skip_sharp)

    monkeypatch.setattr(stills, "load_image", picky)
    outcome = execute(plan(_request(tmp_path / "in", output=tmp_path / "out")), Inverter())
    assert [r.status for r in outcome.results] == ["failed", "done"] and outcome.exit_code == 2
