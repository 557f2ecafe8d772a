"""Model resolution against a loopback server that behaves like the Hub (the real download code)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers.cli import run_algnet
from helpers.hub import FakeHub
from helpers.seeded_weights import seeded_state_dict
from skimage import data

from algnet_cli.images import read_image
from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.model.checkpoint import save_safetensors

TINY = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=8)
REPO = "algnet/tiny"


@pytest.fixture()
def weights():
    return seeded_state_dict(ALGNet(TINY).state_dict(), 21)


@pytest.fixture()
def hub(tmp_path, weights):
    server = FakeHub()
    path = tmp_path / "w.safetensors"
    save_safetensors(weights, path)
    server.add(REPO, "tiny.safetensors", path.read_bytes())
    server.add(REPO, "v1/tiny.safetensors", path.read_bytes(), commit="b" * 40, branch="v1")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def env(tmp_path, hub):
    e = dict(os.environ)
    e.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf"),
        ALGNET_CACHE_DIR=str(tmp_path / "cache"),
        ALGNET_CONFIG_DIR=str(tmp_path / "config"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    e.pop("HF_HUB_OFFLINE", None)
    return e


def algnet(env, *args):
    return run_algnet(*args, env=env)


def test_pull_caches_then_reuses_then_works_offline(hub, env, tmp_path):
    ref = f"hf://{REPO}/tiny.safetensors"
    r = algnet(env, "models", "pull", ref)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert path.startswith(str(tmp_path / "cache")) and os.path.isfile(path)
    assert [m for m, _ in hub.log] == ["HEAD", "HEAD", "GET"]  # ours (what the server answers), the client's, the file
    hub.log.clear()
    assert algnet(env, "models", "pull", ref).stdout.strip() == path
    assert hub.requests("GET") == []  # second pull: no download
    hub.log.clear()
    offline = algnet(env, "models", "pull", ref, "--offline")
    assert offline.returncode == 0 and offline.stdout.strip() == path
    assert hub.log == []  # offline: not a single request
    env2 = dict(env, HF_HUB_OFFLINE="1")
    assert algnet(env2, "models", "pull", ref).stdout.strip() == path and hub.log == []


def test_offline_with_empty_cache_says_what_to_do(hub, env):
    r = algnet(env, "models", "pull", f"hf://{REPO}/tiny.safetensors", "--offline")
    assert r.returncode == 1 and hub.log == []
    assert "not in the cache" in r.stderr and "offline" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


def test_corrupted_body_is_caught_and_deleted(hub, env, tmp_path):
    hub.corrupt.add("tiny.safetensors")
    r = algnet(env, "models", "pull", f"hf://{REPO}/tiny.safetensors")
    assert r.returncode == 1 and "sha256 mismatch" in r.stderr and "deleted" in r.stderr
    blobs = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert not [b for b in blobs if b.stat().st_size > 1000]  # the corrupt download is gone


@pytest.mark.parametrize(
    "ref,message",
    [
        ("hf://nobody/nothing/tiny.safetensors", "has no repository"),
        (f"hf://{REPO}@v9/tiny.safetensors", "has no revision"),
        (f"hf://{REPO}/missing.safetensors", "has no file missing.safetensors"),
    ],
)
def test_404s_have_their_own_messages(hub, env, ref, message):
    r = algnet(env, "models", "pull", ref)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_unreachable_hub(env):
    env = dict(env, HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens on the discard port
    r = algnet(env, "models", "pull", f"hf://{REPO}/tiny.safetensors")
    assert r.returncode == 1 and "cannot reach" in r.stderr


def test_a_cached_commit_sends_nothing(hub, env):
    ref = f"hf://{REPO}@{'a' * 40}/tiny.safetensors"
    assert algnet(env, "models", "pull", ref).returncode == 0
    hub.log.clear()
    assert algnet(env, "models", "pull", ref).returncode == 0 and hub.log == []  # a commit never changes


def test_revision_pin(hub, env):
    r = algnet(env, "models", "pull", f"hf://{REPO}@v1/v1/tiny.safetensors")
    assert r.returncode == 0, r.stderr
    assert any("/resolve/v1/v1/tiny.safetensors" in p for _, p in hub.log)


def test_deblur_from_the_hub_end_to_end(hub, env, tmp_path, weights):
    img = data.astronaut()[:48, :64]
    cv2.imwrite(str(tmp_path / "x.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    r = algnet(
        env,
        "deblur",
        tmp_path / "x.png",
        "-o",
        tmp_path / "out",
        "--model",
        f"hf://{REPO}/tiny.safetensors",
        "--device",
        "cpu",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    local = tmp_path / "local.safetensors"
    save_safetensors(weights, local)
    r = algnet(
        env, "deblur", tmp_path / "x.png", "-o", tmp_path / "out_local", "--model", local, "--device", "cpu", "-q"
    )
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read_image(tmp_path / "out" / "x.png"), read_image(tmp_path / "out_local" / "x.png"))
    record = json.loads((tmp_path / "out" / "algnet-run.json").read_text())
    assert record["model"]["source"].startswith("hf://")


@pytest.mark.parametrize("layout", ["params", "state_dict_module"])
def test_import_official_layout_then_deblur_by_name(env, tmp_path, weights, layout):
    pth = tmp_path / "official.pth"
    if layout == "params":
        torch.save({"params": weights}, pth)
    else:
        torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in weights.items()}, "optimizer": {}}, pth)
    r = algnet(env, "models", "import", pth, "--name", "gopro", "--licence", "test")
    assert r.returncode == 0, r.stderr
    listing = algnet(env, "models", "list")
    assert "gopro" in listing.stdout and "yes" in listing.stdout
    assert "width 8" in algnet(env, "models", "info", "gopro").stdout
    img = data.coffee()[:40, :56]
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    by_name = algnet(
        env, "deblur", tmp_path / "c.png", "-o", tmp_path / "a", "--model", "gopro", "--device", "cpu", "-q"
    )
    direct = algnet(env, "deblur", tmp_path / "c.png", "-o", tmp_path / "b", "--model", pth, "--device", "cpu", "-q")
    assert by_name.returncode == 0 and direct.returncode == 0, by_name.stderr + direct.stderr
    assert np.array_equal(read_image(tmp_path / "a" / "c.png"), read_image(tmp_path / "b" / "c.png"))
    again = algnet(env, "models", "import", pth, "--name", "gopro")
    assert again.returncode == 2 and "already registered" in again.stderr
    rm = algnet(env, "models", "rm", "gopro")
    assert rm.returncode == 0 and "gopro" not in algnet(env, "models", "list").stdout
    assert algnet(env, "deblur", tmp_path / "c.png", "-o", tmp_path / "z", "--model", "gopro").returncode == 1


#: each way a server or a network fails: (mode, what the one line says, the bound in seconds). Our
#: request waits READ_TIMEOUT_S (2 s here, 10 s in use); the stall's bound: the client resumes 5 times,
#: each after HF_HUB_DOWNLOAD_TIMEOUT (1 s here) and 1 s
FAILURES = [
    ("silent", "did not answer within 2 s", 10),
    ("500", "answered 500 (a server error)", 15),
    ("429", "429 Too Many Requests", 15),
    ("404html", "answered 404 with an HTML page that is not the Hub's", 15),
    ("html", "answered 200 with an HTML page that is not the Hub's", 15),
    ("redirect", "redirect loop", 15),
    ("truncated", "download failed", 30),
    ("stall", "download failed", 40),
    ("flip", "sha256 mismatch", 15),
]


@pytest.mark.slow
@pytest.mark.parametrize("mode, says, bound", FAILURES, ids=[f[0] for f in FAILURES])
def test_every_failure_of_the_hub_is_one_line_within_a_bound(hub, env, mode, says, bound, monkeypatch):
    import time

    from algnet_cli.hub import download

    monkeypatch.setattr(download, "READ_TIMEOUT_S", 2.0)
    hub.mode = mode
    start = time.monotonic()
    r = algnet(dict(env, HF_HUB_DOWNLOAD_TIMEOUT="1"), "models", "pull", f"hf://{REPO}/tiny.safetensors")
    took = time.monotonic() - start
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("algnet:")]
    assert r.returncode == 1 and len(ours) == 1 and says in ours[0], r.stderr
    assert "Retry" not in r.stderr and "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "could not reach the Hub" not in r.stderr or mode == "silent"
    assert took < bound, f"{mode}: {took:.1f} s"


def test_a_cached_copy_is_used_when_the_hub_is_down(hub, env):
    r = algnet(env, "models", "pull", f"hf://{REPO}/tiny.safetensors")
    assert r.returncode == 0, r.stderr
    for mode in ("500", "html"):
        hub.mode = mode
        r = algnet(env, "models", "pull", f"hf://{REPO}/tiny.safetensors")
        assert r.returncode == 0, r.stderr
        assert "using the cached copy" in r.stderr and r.stderr.count("algnet:") == 1


def test_a_pull_request_revision_and_a_git_stored_file(hub, env, tmp_path):
    data = (tmp_path / "w.safetensors").read_bytes()
    hub.add(REPO, "pr.safetensors", data, commit="c" * 40, branch="refs/pr/1")
    r = algnet(env, "models", "pull", f"hf://{REPO}@refs/pr/1/pr.safetensors")
    assert r.returncode == 0, r.stderr
    assert any("refs%2Fpr%2F1" in path or "refs/pr/1" in path for _, path in hub.requests())


def test_a_full_cache_says_so_and_names_it(hub, env, tmp_path):
    from helpers.disk import small_tmpfs

    with small_tmpfs(tmp_path / "full", "64k", full=True) as mnt:
        r = algnet(dict(env, ALGNET_CACHE_DIR=str(mnt / "cache")), "models", "pull", f"hf://{REPO}/tiny.safetensors")
        ours = [ln for ln in r.stderr.splitlines() if ln.startswith("algnet:")]
        assert r.returncode == 1 and len(ours) == 1, r.stderr
        assert "No space left on device" in ours[0] and str(mnt / "cache") in ours[0] and "network" not in ours[0]


def test_a_file_kept_in_git_is_checked_against_its_blob_id(hub, env, tmp_path):
    data = (tmp_path / "w.safetensors").read_bytes()
    hub.add(REPO, "git.safetensors", data)
    hub.git_files.add("git.safetensors")
    r = algnet(env, "models", "pull", f"hf://{REPO}/git.safetensors")
    assert r.returncode == 0, r.stderr
    hub.add(REPO, "git2.safetensors", data + b" ")  # other bytes: not already in the cache
    hub.git_files.add("git2.safetensors")
    hub.mode = "flip"
    r = algnet(env, "models", "pull", f"hf://{REPO}/git2.safetensors")
    assert r.returncode == 1 and "git blob id" in r.stderr and "deleted" in r.stderr


def test_a_download_shows_its_bytes_and_rate_on_a_terminal(hub, env):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "algnet_cli", "models", "pull", f"hf://{REPO}/tiny.safetensors"],
                            env=env, stdout=subprocess.PIPE, stderr=slave)  # fmt: skip
    os.close(slave)
    shown = b""
    while True:
        try:
            block = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not block:
            break
        shown += block
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = shown.decode("utf-8", "replace")
    assert "100%" in text and "B/s" in text and "M" in text, text  # bytes (M), rate (B/s)
    r = algnet(env, "models", "pull", f"hf://{REPO}/v1/tiny.safetensors")  # into a pipe: no bar
    assert "B/s" not in r.stderr
