"""Every output planned before any work, one file's failure never ends the batch, frame folders
and empty videos as outputs like any other, and models: never delete what ships."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import tifffile
from helpers.cli import run_deblur, write_identity_checkpoint
from helpers.videos import make_video
from PIL import Image

from algnet_cli.errors import CheckpointError, UsageError
from algnet_cli.hub import parse_ref

RGB = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return write_identity_checkpoint(tmp_path_factory.mktemp("ckpt") / "identity.safetensors")


def write_video(path, n, w, h, noise=False):
    """An H.264 clip of ``n`` frames (random noise frames: large even at --crf 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not noise:
        make_video(path, w, h, [i * 40 for i in range(n)], audio=None)
        return
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def record(folder):
    return json.loads((folder / "algnet-run.json").read_text())


def test_an_over_long_output_name_fails_that_file_alone(tmp_path, identity):
    src = tmp_path / "L"
    src.mkdir()
    long_name = "b" * 251 + ".png"
    for name in ("a1.png", long_name, "z2.png"):
        Image.fromarray(RGB).save(src / name)
    dry = run_deblur(src, "-o", tmp_path / "out", "--suffix", "_s", "--model", identity, "--dry-run")
    assert "would fail" in dry.stdout and "over the file system's limit" in dry.stdout
    r = run_deblur(src, "-o", tmp_path / "out", "--suffix", "_s", "--model", identity, "-q")
    assert r.returncode == 1, r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a1_s.png", "algnet-run.json", "z2_s.png"]
    files = {os.path.basename(f["input"]): f for f in record(tmp_path / "out")["files"]}
    assert files[long_name]["status"] == "failed" and "255" in files[long_name]["error"]
    assert files["a1.png"]["status"] == files["z2.png"]["status"] == "done"


def test_a_run_into_its_own_input_folder_is_refused_even_with_a_suffix(tmp_path, identity):
    same = tmp_path / "same"
    same.mkdir()
    Image.fromarray(RGB).save(same / "a.png")
    before = (same / "a.png").read_bytes()
    r = run_deblur(same, "-o", same, "--suffix", "_s", "--model", identity, "-q")
    assert r.returncode == 2 and "is the input folder" in r.stderr, r.stderr
    assert sorted(p.name for p in same.iterdir()) == ["a.png"] and (same / "a.png").read_bytes() == before


@pytest.mark.parametrize(
    "inputs, output",
    [(["a.png"], "out.mp4"), (["a.png"], "out.txt"), (["v.mp4"], "x.png"), (["a.png", "b.png"], "x.png")],
)
def test_an_output_file_name_of_the_wrong_kind_is_a_usage_error(tmp_path, identity, inputs, output):
    for name in inputs:
        if name.endswith(".png"):
            Image.fromarray(RGB).save(tmp_path / name)
        else:
            write_video(tmp_path / name, 3, 32, 24)
    r = run_deblur(*[tmp_path / n for n in inputs], "-o", tmp_path / output, "--model", identity)
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--max-memory", "-1"],
        ["--max-memory", "nan"],
        ["--codec", "nonexistent"],
        ["--pix-fmt", "bogus"],
        ["--codec", "h264", "--video-format", "webm"],
    ],
)
def test_invalid_settings_are_usage_errors_before_the_model_loads(tmp_path, args):
    write_video(tmp_path / "v.mp4", 3, 32, 24)
    # a model that does not exist: a usage error must come first
    r = run_deblur(tmp_path / "v.mp4", "-o", tmp_path / "out/", "--model", tmp_path / "missing.safetensors", *args)
    assert r.returncode == 2 and "usage error" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def write_zero_frame_video(path):
    """A Matroska file with a video stream that holds no frame, beside an audio stream with packets."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        a = c.add_stream("aac", rate=8000)
        a.layout = "mono"
        t = 0
        for _ in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, t
            t += 1024
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)


def test_a_video_without_frames_fails_by_name(tmp_path, identity):
    src = tmp_path / "in"
    src.mkdir()
    write_zero_frame_video(src / "empty.mkv")
    Image.fromarray(RGB).save(src / "a.png")
    r = run_deblur(src, "-o", tmp_path / "out", "--model", identity, "-q")
    assert r.returncode == 1
    assert "empty.mkv" in r.stderr and "no video frame" in r.stderr
    assert not (tmp_path / "out" / "empty.mkv").exists()
    videos = record(tmp_path / "out")["videos"]
    assert videos[0]["status"] == "failed"


def test_the_batch_goes_on_after_a_video_fails_for_space(tmp_path, identity):
    from helpers.disk import small_tmpfs

    with small_tmpfs(tmp_path / "small", "150k") as mnt:
        src = tmp_path / "in"
        src.mkdir()
        noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(noise[:8, :8]).save(src / "a.png")
        write_video(src / "b.mp4", 12, 96, 64, noise=True)
        write_video(src / "c.mp4", 12, 96, 64, noise=True)
        Image.fromarray(noise[:8, :8]).save(src / "d.png")
        r = run_deblur(src, "-o", mnt, "--model", identity, "--crf", "0", "-q")
        assert r.returncode == 1, r.stderr
        assert "internal error" not in r.stderr and ".algnet-tmp" not in r.stderr
        rec = record(mnt)
        statuses = [v["status"] for v in rec["videos"]]
        assert "failed" in statuses and len(statuses) == 2  # the second video was tried too
        failed = next(v for v in rec["videos"] if v["status"] == "failed")
        assert "b.mp4" in failed["error"] or "c.mp4" in failed["error"]
        assert not [p for p in mnt.iterdir() if p.name.startswith(".algnet-tmp")]


def test_an_interrupted_frame_folder_is_done_again_and_overwrite_leaves_no_stale_frame(tmp_path, identity):
    write_video(tmp_path / "clip.mp4", 12, 32, 24)
    frames = tmp_path / "frames" / "clip"
    frames.mkdir(parents=True)
    for i in range(1, 5):  # an interrupted run: four frames, its record says partial
        Image.fromarray(RGB).save(frames / f"{i:06d}.png")
    (frames / ".algnet-frames.json").write_text(json.dumps({"status": "partial", "frames": 4}))
    r = run_deblur(tmp_path / "clip.mp4", "--frames-out", tmp_path / "frames", "--model", identity, "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in frames.glob("*.png")) == [f"{i:06d}.png" for i in range(1, 13)]
    assert json.loads((frames / ".algnet-frames.json").read_text())["status"] == "done"
    # another, shorter clip of the same stem over it, with --overwrite: none of the old frames stay
    write_video(tmp_path / "short" / "clip.mp4", 5, 32, 24)
    r = run_deblur(tmp_path / "short" / "clip.mp4", "--frames-out", tmp_path / "frames", "--model", identity,
                   "--overwrite", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in frames.glob("*.png")) == [f"{i:06d}.png" for i in range(1, 6)]
    # a finished folder is skipped
    r = run_deblur(tmp_path / "short" / "clip.mp4", "--frames-out", tmp_path / "frames", "--model", identity)
    assert r.returncode == 0 and "1 already there" in r.stderr + r.stdout


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_models_rm_never_deletes_the_shipped_weights(tmp_path):
    import algnet_cli

    shipped = sorted((os.path.dirname(algnet_cli.__file__) + "/weights/" + f) for f in os.listdir(
        os.path.dirname(algnet_cli.__file__) + "/weights") if f.endswith(".safetensors"))  # fmt: skip
    before = {p: sha256(__import__("pathlib").Path(p)) for p in shipped}
    env = {**os.environ, "ALGNET_CONFIG_DIR": str(tmp_path / "cfg"), "ALGNET_CACHE_DIR": str(tmp_path / "cache")}
    for name in ("algnet-small", "default"):
        r = subprocess.run(
            [sys.executable, "-m", "algnet_cli", "models", "rm", name], capture_output=True, text=True, env=env
        )
        assert r.returncode == 2 and "ships inside algnet-cli" in r.stderr, r.stderr
    assert before and all(sha256(__import__("pathlib").Path(p)) == h for p, h in before.items())


def test_checkpoints_that_cannot_be_right_are_refused_by_name(tmp_path, identity):
    from safetensors.torch import load_file, save_file

    from algnet_cli.model.checkpoint import load_checkpoint

    sd = load_file(str(identity))
    quantised = {k: (v * 100).to(__import__("torch").int8) for k, v in sd.items()}
    save_file(quantised, str(tmp_path / "q.safetensors"))
    with pytest.raises(CheckpointError, match="integer"):
        load_checkpoint(tmp_path / "q.safetensors")
    del sd["ending.bias"]
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(tmp_path / "bad.safetensors")
    r = run_deblur(tmp_path / "q.safetensors", "-o", tmp_path / "o/", "--model", "/dev/zero")
    assert "not a regular file" in r.stderr and "no such file" not in r.stderr
    with pytest.raises(UsageError, match=r"'\.\.'"):
        parse_ref("hf://owner/repo/../../x.safetensors")
    r = run_deblur(tmp_path / "q.safetensors", "-o", tmp_path / "o/", "--model", "hf://owner/repo/../../x.safetensors")
    assert r.returncode == 2 and "'..'" in r.stderr and "internal error" not in r.stderr


def hostile_folder(root):
    """Files a new user's folder holds: the good ones must come back exact (identity model) or
    with a note, the bad ones be named with their reason."""
    root.mkdir()
    good = {}
    buf = __import__("io").BytesIO()
    Image.fromarray(RGB).save(buf, format="JPEG", quality=90)
    (root / "motion.jpg").write_bytes(buf.getvalue() + b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    good["motion.jpg"] = "lossy"
    pal = Image.fromarray(RGB[..., 0] // 32, "P")
    pal.putpalette(list(range(0, 256, 32)) * 3)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :8] = np.arange(8) * 8000
    tifffile.imwrite(root / "palette.tif", RGB[..., 0] // 32, photometric="palette", colormap=cmap)
    tifffile.imwrite(root / "miniswhite.tif", RGB[..., 1], photometric="miniswhite")
    tifffile.imwrite(root / "planar.tif", np.moveaxis(RGB, -1, 0)[:, :, :4], photometric="rgb", planarconfig="separate")
    tifffile.imwrite(root / "int16.tif", (RGB[..., 0].astype(np.int16) - 128) * 200, photometric="minisblack")
    good.update({n: "exact" for n in ("palette.tif", "miniswhite.tif", "planar.tif", "int16.tif")})
    Image.fromarray(RGB).save(root / "png_named.jpg", format="PNG")
    good["png_named.jpg"] = "exact"
    tifffile.imwrite(root / "int32.tif", RGB[..., 0].astype(np.int32), photometric="minisblack")
    Image.fromarray(RGB).save(root / ("n" * 251 + ".png"))
    write_zero_frame_video(root / "zero.mkv")
    (root / "x.png").write_bytes(b"PF\n40000 40000\n-1.0\n" + bytes(4000))
    bad = {"int32.tif": "not supported", "n" * 251 + ".png": "limit", "zero.mkv": "no video frame", "x.png": "PFM"}
    return good, bad


def test_a_hostile_folder_comes_back_exact_or_noted_and_names_every_bad_file(tmp_path, identity):
    good, bad = hostile_folder(tmp_path / "in")
    r = run_deblur(tmp_path / "in", "-o", tmp_path / "out", "--suffix", "_s", "--model", identity, "-q")
    assert r.returncode == 1, r.stderr
    assert "internal error" not in r.stderr
    rec = record(tmp_path / "out")
    rows = {os.path.basename(f["input"]): f for f in rec["files"] + rec["videos"]}
    for name, why in bad.items():
        assert rows[name]["status"] == "failed" and why in rows[name]["error"], (name, rows[name])
        assert name[:40] in r.stderr
    for name, kind in good.items():
        row = rows[name]
        assert row["status"] == "done", row
        stem, ext = os.path.splitext(name)
        src, out = tmp_path / "in" / name, tmp_path / "out" / f"{stem}_s{ext}"
        if name.endswith(".tif"):
            a, b = tifffile.imread(src), tifffile.imread(out)
            with tifffile.TiffFile(src) as ta, tifffile.TiffFile(out) as tb:
                assert ta.pages[0].photometric == tb.pages[0].photometric, name
            assert np.array_equal(a, b), name
        elif kind == "exact":
            assert np.array_equal(np.asarray(Image.open(src)), np.asarray(Image.open(out))) or row.get("notes"), name
        else:
            assert row.get("notes"), name


def test_progress_shows_no_false_rate_or_total(tmp_path):
    import io

    from algnet_cli.progress import Progress

    out = io.StringIO()
    with Progress(0, "clip", stream=out, unit="MP", force_terminal=False) as p:  # a total not known
        p.advance("frame 1", units=0.0001)
    line = out.getvalue()
    assert line.startswith("algnet: [1] frame 1") and "0.00 MP/s" not in line
    from algnet_cli.video import VideoReport

    r = VideoReport("a.mkv", "b.mkv", frames_expected=1800001, frames_estimated=True)
    assert r.to_dict()["frames_expected_estimate"] == 1800001 and "frames_expected" not in r.to_dict()


def test_alpha_that_differs_is_named_in_the_scores(tmp_path):
    from algnet_cli.metrics import Protocol
    from algnet_cli.scoring import Pair, score_pair

    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    other = rgba.copy()
    other[..., 3] = 10
    Image.fromarray(rgba).save(tmp_path / "p.png")
    Image.fromarray(other).save(tmp_path / "g.png")
    row = score_pair(Pair("p.png", tmp_path / "p.png", tmp_path / "g.png"), Protocol())
    assert row.psnr == float("inf") and "alpha differs" in row.note
    assert "not scored" in Protocol().describe()["alpha"]


def test_a_folder_of_unread_formats_names_them(tmp_path):
    (tmp_path / "a.avif").write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(40))
    (tmp_path / "b.jxl").write_bytes(b"\xff\x0a" + bytes(40))
    r = run_deblur(tmp_path, "-o", tmp_path / "out", "--model", "default")
    assert r.returncode == 2 and "a.avif" in r.stderr and "b.jxl" in r.stderr


def test_deblur_gt_exits_1_when_a_pair_cannot_be_scored(tmp_path, identity):
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(RGB).save(tmp_path / "in" / "a.png")
    Image.fromarray(RGB[:10]).save(tmp_path / "gt" / "a.png")  # another size: cannot be scored
    r = run_deblur(tmp_path / "in", "-o", tmp_path / "out", "--gt", tmp_path / "gt", "--model", identity, "-q")
    assert r.returncode == 1, r.stderr
    # for that reason, and no other: the file itself was deblurred, the pair could not be scored
    record = json.loads((tmp_path / "out" / "algnet-run.json").read_text())
    assert [f["status"] for f in record["files"]] == ["done"]
    line = next(ln for ln in r.stderr.splitlines() if "not scored" in ln)
    assert "a.png" in line and "size" in line


def test_a_user_set_decoding_limit_is_called_so(tmp_path, identity):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    r = run_deblur(tmp_path / "a.png", "-o", tmp_path / "o/", "--max-megapixels", "0.0001", "--model", identity)
    assert r.returncode == 1 and "--max-megapixels" in r.stderr and "half the memory" not in r.stderr


def test_ffmpeg_messages_while_writing_go_to_that_videos_record(tmp_path, monkeypatch, capfd):
    import av.logging

    from algnet_cli.video import encode, process_video

    make_video(tmp_path / "c.mp4", 32, 24, [i * 40 for i in range(3)], audio=None)
    write = encode.VideoWriter.write

    def noisy(self, kind, a, b):
        av.logging.log(av.logging.ERROR, "mp4", "a muxer complaint")
        return write(self, kind, a, b)

    monkeypatch.setattr(encode.VideoWriter, "write", noisy)
    report = process_video(tmp_path / "c.mp4", tmp_path / "o.mp4", lambda f: f)
    assert report.status == "done" and len(report.log) == 1 and "a muxer complaint" in report.log[0]
    assert "a muxer complaint" not in capfd.readouterr().err


HEADERS = {
    "pfm": b"PF\n40000 40000\n-1.0\n" + bytes(4 << 20),
    "hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 40000 +X 40000\n" + bytes(4 << 20),
    "unknown": b"\x13\x37 nothing anyone knows" + bytes(4096),
}


@pytest.mark.slow
def test_files_whose_format_we_do_not_read_are_refused_by_their_header_not_decoded(tmp_path, identity):
    """Each file is refused with its reason, read from its header alone: the run's peak memory stays far
    below what decoding a 40000x40000 float image would take (one run for all of them)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for kind, header in HEADERS.items():
        (folder / f"{kind}.png").write_bytes(header)
    # the child's peak memory, as its parent sees it (a fresh parent: no other child counts)
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.returncode); print(r.stderr)"
    )
    cmd = [sys.executable, "-m", "algnet_cli", "deblur", str(folder), "-o", str(tmp_path / "o/")]
    out = subprocess.run([sys.executable, "-c", probe, *cmd, "--model", str(identity)], capture_output=True, text=True)
    peak_kib, code, stderr = out.stdout.split("\n", 2)
    assert int(code) == 1, stderr
    said = {kind: [ln for ln in stderr.splitlines() if f"{kind}.png" in ln] for kind in HEADERS}
    assert all(said.values()), stderr
    assert any("unrecognised content" in ln for ln in said["unknown"]), stderr
    for kind, name in (("pfm", "PFM"), ("hdr", "Radiance HDR")):
        assert any("40000x40000" in ln and name in ln for ln in said[kind]), stderr
    assert int(peak_kib) < 1 << 20  # KiB: under 1 GiB
    assert not any((tmp_path / "o").glob("*.png"))  # nothing written for any of them


def test_deblur_file_gives_the_cli_output_for_a_multi_page_tiff(tmp_path, identity):
    from algnet_cli.api import Deblurrer

    pages = np.stack([RGB, 255 - RGB, RGB // 2])
    tifffile.imwrite(tmp_path / "p.tif", pages, photometric="rgb")
    r = run_deblur(tmp_path / "p.tif", "-o", tmp_path / "cli.tif", "--model", identity, "-q")
    assert r.returncode == 0, r.stderr
    notes = Deblurrer(str(identity), device="cpu", quiet=True).deblur_file(tmp_path / "p.tif", tmp_path / "api.tif")
    assert any("3 pages" in n for n in notes)
    assert np.array_equal(tifffile.imread(tmp_path / "api.tif"), tifffile.imread(tmp_path / "cli.tif"))
    assert np.array_equal(tifffile.imread(tmp_path / "api.tif"), pages)


def test_training_photos_and_display_use_the_one_8_bit_conversion():
    from algnet_cli.compare import to_rgb8
    from algnet_cli.images import to_8bit
    from algnet_cli.train.datasets import _rgb8

    sixteen = np.array([[[0, 128, 32767], [32896, 65407, 65535]]], np.uint16).reshape(1, 2, 3)
    floats = np.array([[[0.0, 0.5, 0.998], [0.002, 1.0, 0.25]]], np.float32).reshape(1, 2, 3)
    for img in (sixteen, floats):
        want = to_8bit(img)
        assert np.array_equal(_rgb8(img), want) and np.array_equal(to_rgb8(img), want)
    assert to_8bit(sixteen)[0, 0, 1] == 0 and to_8bit(sixteen)[0, 1, 0] == 128  # 128/257 rounds to 0, 32896 to 128
    assert to_8bit(floats).max() == 255 and to_8bit(floats)[0, 0, 1] == 128  # floats keep their range


def test_strength_blends_the_correction_per_pixel(tmp_path):
    from helpers.cli import write_tiny_checkpoint

    model = write_tiny_checkpoint(tmp_path / "tiny.safetensors")  # a model that changes the image
    Image.fromarray(RGB).save(tmp_path / "a.png")
    outs = {}
    for s in ("1", "0", "0.5", None):
        args = ["--strength", s] if s is not None else []
        r = run_deblur(tmp_path / "a.png", "-o", f"{tmp_path / f'o{s}'}/", "--model", model, "-q", *args)
        assert r.returncode == 0, r.stderr
        outs[s] = np.asarray(Image.open(tmp_path / f"o{s}" / "a.png")).astype(int)
    assert np.array_equal(outs["0"], RGB)  # the input, bit for bit
    assert np.array_equal(outs["1"], outs[None]) and not np.array_equal(outs["1"], RGB)
    assert np.abs(outs["0.5"] - (RGB.astype(int) + outs["1"]) / 2).max() <= 1  # halfway, within one level
    assert record(tmp_path / "o0.5")["strength"] == 0.5
    r = run_deblur(tmp_path / "a.png", "-o", f"{tmp_path / 'bad'}/", "--model", model, "--strength", "1.5")
    assert r.returncode == 2
