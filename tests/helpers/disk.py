"""A small tmpfs for the tests that need a disk that runs out of room (root only; skipped otherwise)."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(mnt: Path, size: str, full: bool = False):
    """A tmpfs of ``size`` (``150k``) mounted at ``mnt`` (made), unmounted afterwards; with ``full``,
    a filler file takes all its room first."""
    mnt.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        if full:
            fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\1" * 4096):
                    pass
            except OSError:  # no space left: full
                pass
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)])
