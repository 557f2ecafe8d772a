"""A real Ray cluster on this machine for the tests: one ``ray start --block`` process per node, as an
operator starts them, each ended by its own process id (its process group: the node's raylet and
workers), never by a name."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _in_own_mounts(args: list[str], mounts: list[tuple[Path | None, Path]]) -> list[str]:
    """``args`` run in a mount namespace of their own, where each ``(source, target)`` is mounted first:
    ``source`` bound over ``target``, or an empty tmpfs over it where ``source`` is None. What that
    process and its children see of the disk is theirs alone: another machine's view of the same paths."""
    steps = [
        f"mount -t tmpfs algnet-test {shlex.quote(str(t))}"
        if s is None
        else f"mount --bind {shlex.quote(str(s))} {shlex.quote(str(t))}"
        for s, t in mounts
    ]
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    # no bytecode written from there: a module read from a bound file must not leave its .pyc to the others
    script = "set -e; " + "; ".join(steps) + '; export PYTHONDONTWRITEBYTECODE=1; exec "$@"'
    return ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args]


def own_mounts_unavailable() -> str | None:
    """Why this machine cannot start a process with a view of the disk of its own (no ``unshare``, or
    neither root nor unprivileged user namespaces); None when it can."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        try:
            r = subprocess.run(_in_own_mounts(["true"], [(None, Path(d))]), capture_output=True, text=True)
        except OSError as e:
            return f"unshare: {e}"
        return None if r.returncode == 0 else f"unshare: {r.stderr.strip()[-200:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, proc: subprocess.Popen, log: Path, head: bool):
        self.proc, self.log, self.head = proc, log, head

    def end(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """The node's processes, by the ``ray start`` process's group id (it leads a session of its own)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:  # what a graceful drain left running
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class RayStartCluster:
    """``ray start --head`` and one more ``ray start`` node, one CPU each, under ``folder``."""

    def __init__(self, folder: Path, nodes: int = 2):
        self.folder = folder
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, RAY_TMPDIR=str(folder), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
        self.nodes: list[Node] = []
        self._start(head=True)
        for _ in range(nodes - 1):
            self._start(head=False)
        self.wait_for_nodes()

    @property
    def head_node(self) -> Node:
        return self.nodes[0]

    def list_all_nodes(self) -> list[Node]:
        return list(self.nodes)

    def _start(self, head: bool, mounts: list[tuple[Path | None, Path]] | None = None) -> Node:
        log = self.folder / f"node{len(self.nodes)}.log"
        args = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats"]
        if head:
            args += [f"--port={self.port}", "--head", f"--temp-dir={self.folder / 'ray'}", "--include-dashboard=false"]
        else:
            args += [f"--address={self.address}"]
        if mounts:
            args = _in_own_mounts(args, mounts)
        with open(log, "w") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        node = Node(proc, log, head)
        self.nodes.append(node)
        return node

    def add_node(self, num_cpus: int = 1, mounts: list[tuple[Path | None, Path]] | None = None) -> Node:
        """One more node. ``mounts``: what it sees otherwise than the others, as another machine would (see
        :func:`_in_own_mounts`): storage it does not share, or files of its own at the same paths."""
        assert num_cpus == 1
        return self._start(head=False, mounts=mounts)

    def remove_node(self, node: Node) -> None:
        """The node lost at once (SIGKILL to its processes), as a machine that goes away."""
        node.end(signal.SIGKILL, grace=0)
        self.nodes.remove(node)

    def end_node(self, node: Node) -> None:
        """The node stopped as an operator stops it (SIGTERM to its processes), and gone from the cluster."""
        node.end()
        self.nodes.remove(node)
        self.wait_for_nodes()

    def wait_for_nodes(self, timeout: float = 120.0) -> None:
        """Until the cluster counts as many live nodes as were started (asked from another process: Ray
        stays out of the test process)."""
        script = (
            "import ray, sys, time\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            "t = time.time()\n"
            f"while sum(n['Alive'] for n in ray.nodes()) != {len(self.nodes)} and time.time() - t < {timeout}:\n"
            "    time.sleep(0.5)\n"
            f"sys.exit(sum(n['Alive'] for n in ray.nodes()) != {len(self.nodes)})\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline or any(n.proc.poll() is not None for n in self.nodes):
                logs = "".join(n.log.read_text()[-2000:] for n in self.nodes)
                raise RuntimeError(f"the test cluster did not come up: {r.stderr[-2000:]}\n{logs}")
            time.sleep(1)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            node.end()
        self.nodes.clear()
