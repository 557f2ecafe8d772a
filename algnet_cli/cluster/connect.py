"""Reaching a Ray cluster: an existing one by address, or a local one started (and stopped) for the run."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

from ..errors import UsageError

INSTALL_HINT = "--cluster needs Ray: pip install 'algnet-cli[ray]'"

#: environment variables handed to every worker, so that caches, offline mode and kernel settings agree
FORWARDED_ENV = ("ALGNET_", "HF_", "HUGGINGFACE_", "TRITON_INTERPRET")


@dataclass(frozen=True)
class ClusterOptions:
    """address: 'local' (start a Ray instance on this machine for the run), 'auto' (the cluster this
    machine belongs to), or any Ray address (HOST:PORT, ray://HOST:PORT). workers: how many actors
    (None: one per GPU, or one per node where there are no GPUs). max_crashes: a file that kills
    this many workers is named as failed."""

    address: str = "local"
    workers: int | None = None
    max_crashes: int = 3


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def worker_env() -> dict[str, str]:
    """The driver's settings that workers must share (the model cache, offline mode, the kernel cache)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}


@contextlib.contextmanager
def connect(options: ClusterOptions):
    """Ray, initialised for this run; shut down (and a local instance stopped) at the end.

    Already initialised (a program that started Ray itself, or a test cluster): used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"runtime_env": {"env_vars": worker_env()}, "log_to_driver": False, "configure_logging": False}
    temp = None
    if options.address == "local":
        # Ray's own files, not /tmp/ray shared with others: under RAY_TMPDIR when set, removed at the end
        temp = tempfile.mkdtemp(prefix="algnet-ray-", dir=_local_temp_parent())
        kwargs.update(include_dashboard=False, _temp_dir=temp)
        # a new instance, whatever RAY_ADDRESS names; Ray's notes on starting it (its token, made for this
        # machine's instances) are not the user's business
        quiet = logging.getLogger("ray")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            ray.init(address="local", **kwargs)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        finally:
            quiet.setLevel(level)
    else:
        _check_reachable(options.address)
        try:
            ray.init(address=options.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--cluster {options.address}: cannot connect to a Ray cluster there ({e})") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


#: what Ray adds under the folder it is given: ``session_<date>_<time>_<us>_<pid>/sockets/<socket>``, and
#: the folder this run makes there; a Unix socket's path holds at most 107 bytes
_RAY_SOCKET_TAIL = len("/algnet-ray-xxxxxxxx/session_2026-12-31_23-59-59_999999_4194304/sockets/plasma_store_x")
_SOCKET_PATH_MAX = 107


def _local_temp_parent() -> str:
    """Where a local instance's folder goes: RAY_TMPDIR when set, else the temporary folder, else /tmp
    where the temporary folder's path is too long for Ray's sockets."""
    chosen = os.environ.get("RAY_TMPDIR")
    room = _SOCKET_PATH_MAX - _RAY_SOCKET_TAIL
    if chosen:
        if len(os.fsencode(os.path.abspath(chosen))) > room:
            raise UsageError(
                f"--cluster local: RAY_TMPDIR {chosen} is too long a path for Ray's sockets (at most {room} "
                "bytes): name a shorter folder"
            )
        return chosen
    default = tempfile.gettempdir()
    if len(os.fsencode(default)) <= room:
        return default
    if os.access("/tmp", os.W_OK):
        return "/tmp"
    raise UsageError(
        f"--cluster local: the temporary folder {default} is too long a path for Ray's sockets (at most {room} "
        "bytes): set RAY_TMPDIR to a shorter folder"
    )


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that does not answer is a one-line error, not minutes of retries."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as e:
        raise UsageError(f"--cluster {address}: no Ray cluster answers there ({e.strerror or e})") from None
    with conn:
        if not _speaks_grpc(conn):
            raise UsageError(
                f"--cluster {address}: something listens there, but it is not a Ray cluster "
                "(no gRPC answer; the address is the head's GCS port, 6379 by default, or ray://HOST:10001)"
            )


#: HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4): a gRPC server, as
#: Ray's GCS and its client server are, answers with a SETTINGS frame of its own at once
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(conn) -> bool:
    """Whether the server on ``conn`` answers HTTP/2 (what Ray speaks): an HTTP/1 server, or one that says
    nothing, would leave ``ray.init`` retrying for minutes."""
    try:
        conn.sendall(_HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # a timeout included
        return False
    return head[3] == 4  # frame type SETTINGS
