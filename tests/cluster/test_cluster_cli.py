"""--cluster at the edges: the single-machine path never imports Ray; without Ray the flag says how to get it."""

import socket
import subprocess
import sys

import numpy as np
import pytest
from helpers.cli import write_tiny_checkpoint
from PIL import Image

pytestmark = pytest.mark.slow  # each test starts Python anew: what it imports is the point

RUN = """
import sys
{block}
from algnet_cli.cli import app
try:
    app(sys.argv[1:])
except SystemExit as e:
    code = e.code
print("RAY IMPORTED" if "ray" in sys.modules else "no ray", code)
"""

BLOCK_RAY = """
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
sys.meta_path.insert(0, _NoRay())
"""


def _run(block, *args):
    return subprocess.run(
        [sys.executable, "-c", RUN.format(block=block), *map(str, args)], capture_output=True, text=True
    )


def _folder(tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(tmp_path / "in" / "a.png")
    return tmp_path / "in", write_tiny_checkpoint(tmp_path / "m.safetensors")


def test_the_single_machine_path_does_not_import_ray(tmp_path):
    folder, model = _folder(tmp_path)
    r = _run("", "deblur", folder, "-o", tmp_path / "out", "--model", model, "-q")
    assert r.stdout.split()[-2:] == ["ray", "0"] and "RAY IMPORTED" not in r.stdout, r.stderr
    assert (tmp_path / "out" / "a.png").exists()


def test_without_ray_the_flag_gives_a_one_line_hint(tmp_path):
    folder, model = _folder(tmp_path)
    r = _run(BLOCK_RAY, "deblur", folder, "-o", tmp_path / "out", "--model", model, "--cluster", "local")
    assert r.stdout.split()[-1] == "2"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'algnet-cli[ray]'" in lines[0]
    assert not (tmp_path / "out" / "a.png").exists()


def test_workers_without_cluster_is_a_usage_error(tmp_path):
    folder, model = _folder(tmp_path)
    r = _run("", "deblur", folder, "-o", tmp_path / "out", "--model", model, "--cluster-workers", "2")
    assert r.stdout.split()[-1] == "2" and "--cluster-workers only applies with --cluster" in r.stderr


def test_an_address_where_no_cluster_answers_is_a_one_line_error(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder, model = _folder(tmp_path)
    r = _run("", "deblur", folder, "-o", tmp_path / "out", "--model", model, "--cluster", f"127.0.0.1:{port}")
    assert r.stdout.split()[-1] == "2" and "no Ray cluster answers there" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


@pytest.mark.parametrize("server", ["http", "silent"])
def test_an_address_that_is_not_ray_fails_in_seconds(tmp_path, server):
    """Something listens there (a web server, or a server that says nothing): one line, in seconds, not
    minutes of Ray's retries."""
    import http.server
    import threading
    import time

    pytest.importorskip("ray")
    if server == "http":
        httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        listener = None
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts connections (the kernel does), never answers
        port, httpd = listener.getsockname()[1], None
    try:
        folder, model = _folder(tmp_path)
        t0 = time.monotonic()
        r = _run("", "deblur", folder, "-o", tmp_path / "out", "--model", model, "--cluster", f"127.0.0.1:{port}")
        assert time.monotonic() - t0 < 30
    finally:
        if httpd is not None:
            httpd.shutdown()
        if listener is not None:
            listener.close()
    assert r.stdout.split()[-1] == "2" and "it is not a Ray cluster" in r.stderr, r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cluster_local_starts_its_own_ray_whatever_ray_address_says_and_leaves_no_folder(tmp_path):
    """RAY_ADDRESS names a port where nothing answers: --cluster local starts a Ray instance of its own
    all the same, says nothing of Ray's own, and removes its files at the end. The temporary folder's
    path is too long for Ray's sockets (107 bytes): the instance goes under /tmp instead; a RAY_TMPDIR
    that long is a one-line error."""
    pytest.importorskip("ray")
    import glob
    import hashlib
    import json
    import os

    folder, model = _folder(tmp_path)
    temp = tmp_path / ("long-" * 12)
    temp.mkdir()
    # the user's files beside the Ray folder the run makes and removes, and beside its output: untouched
    theirs = [temp / "keep.txt", tmp_path / "notes.txt"]
    for i, path in enumerate(theirs):
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"the user's file {i}")
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in theirs]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_TMPDIR"}
    env.update(RAY_ADDRESS=nowhere, TMPDIR=str(temp), OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    args = ["deblur", folder, "-o", tmp_path / "out", "--model", model, "--cluster", "local", "-q"]
    command = [sys.executable, "-m", "algnet_cli", *map(str, args)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0 and stderr.strip() == "", stderr
    record = json.loads((tmp_path / "out" / "algnet-run.json").read_text())
    assert record["cluster"]["address"] == "local" and [f["status"] for f in record["files"]] == ["done"]
    assert (tmp_path / "out" / "a.png").exists() and [p.name for p in temp.iterdir()] == ["keep.txt"]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in theirs] == before
    assert not glob.glob(f"/tmp/algnet-ray-*/session_*_{run.pid}")  # Ray names its session by the driver's pid
    r = subprocess.run(command, capture_output=True, text=True, env=dict(env, RAY_TMPDIR=str(temp)), timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and f"RAY_TMPDIR {temp} is too long a path" in lines[0], r.stderr
