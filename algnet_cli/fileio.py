"""Safe file writing: a temporary name in the destination folder, renamed into place when complete."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

TEMP_PREFIX = ".algnet-tmp-"
#: temporaries of unknown owner (an older naming) count as stale after this long
LEGACY_TEMP_AGE_S = 24 * 3600
_OWNER_RX = re.compile(r"^" + re.escape(TEMP_PREFIX) + r"(?P<host>[A-Za-z0-9_.-]+)~(?P<pid>\d+)~")


def _host(name: str | None = None) -> str:
    """A host name (this machine's by default) as it stands in temporary file names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname() if name is None else name) or "host"


def temp_prefix() -> str:
    """The prefix of this process's temporary files: the host and PID of their owner are in the name,
    so a later run can tell a dead run's leftovers from a live run's work in progress."""
    return f"{TEMP_PREFIX}{_host()}~{os.getpid()}~"


def make_temp(dst: Path) -> Path:
    """An empty temporary file next to ``dst`` (same folder, same suffix), named for its owner."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=dst.suffix, dir=dst.parent)
    os.close(fd)
    return Path(tmp)


def probe_writable(folder: Path) -> None:
    """Make ``folder`` (as an output would) and a temporary file in it, then remove the file: OSError
    when either cannot be done. The one check that a folder takes files, before any work."""
    make_temp(folder / "probe").unlink()


def _owner_alive(host: str, pid: int) -> bool:
    if host != _host():
        return True  # another machine's (a shared folder): never ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def remove_temps_of(folders: Iterable[Path], host: str, pid: int) -> int:
    """Remove the temporary files of one process (of a worker known to be dead) from ``folders``."""
    prefix = f"{TEMP_PREFIX}{_host(host)}~{pid}~"
    removed = 0
    for folder in folders:
        if folder.is_dir():
            for t in folder.glob(prefix + "*"):
                t.unlink(missing_ok=True)
                removed += 1
    return removed


def stale_temps(folders: Iterable[Path]) -> list[Path]:
    """Temporary files in ``folders`` left by processes that are gone.

    A temporary whose owner still runs (another ``algnet`` writing to the same folder) is not
    stale; one of unknown owner is stale once it is older than ``LEGACY_TEMP_AGE_S``.
    """
    stale = []
    now = time.time()
    for folder in folders:
        if not folder.is_dir():
            continue
        for t in folder.glob(TEMP_PREFIX + "*"):
            m = _OWNER_RX.match(t.name)
            if m:
                if not _owner_alive(m["host"], int(m["pid"])):
                    stale.append(t)
            else:
                try:
                    if now - t.lstat().st_mtime > LEGACY_TEMP_AGE_S:
                        stale.append(t)
                except OSError:
                    continue
    return stale


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it is a regular file.

    Broken and looping symbolic links, folders, FIFOs, sockets and devices are named as such, so
    that nothing blocks on them (a FIFO opened for reading waits for a writer forever).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (points to {os.readlink(path)})"
        return "no such file"
    except OSError as e:
        if e.errno == 40:  # ELOOP
            return "symbolic link loop"
        return e.strerror or str(e)
    if stat.S_ISREG(st.st_mode):
        return None
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), "a special file")
    return f"not a regular file ({kind})"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` to produce the file at a temporary path next to ``path``, then rename it.

    On any error (or interrupt) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        tmp_path = make_temp(path)
    except OSError as e:
        raise _naming(e, path) from None
    try:
        write(tmp_path)
        commit_temp(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise _naming(e, path) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _naming(e: OSError, path: Path) -> OSError:
    """The same error (same type, same errno), naming the file the user asked for, not its temporary
    twin: "PATH: cannot write it: No space left on device"."""
    if e.errno is None:
        return e
    reason = e.strerror or str(e)
    return OSError(e.errno, reason if reason.startswith("cannot write it") else f"cannot write it: {reason}", str(path))


def commit_temp(tmp_path: Path, path: Path) -> None:
    """Move a complete temporary file from :func:`make_temp` into place, with the usual permissions
    (mkstemp makes 0600)."""
    os.chmod(tmp_path, 0o666 & ~_umask())
    os.replace(tmp_path, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; remembered for the file as it is (its real path,
    size and modification time), so that loading a model verifies and describes it with one read."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    """The process's umask, read without changing it: setting it to 0 and back, even for an instant,
    would give files that other threads create meanwhile the wrong permissions."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:  # Linux 4.7+
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def _read_umask_once() -> int:
    mask = os.umask(0o022)  # where /proc has no Umask line: once, at import, before any writer thread
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _read_umask_once()
