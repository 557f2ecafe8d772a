"""File permissions tested for real, whoever runs the tests. Root (as in CI) reads and writes through
any mode: within :func:`ordinary_user` the calling thread (and the threads it starts) lose the two
capabilities that allow it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a mode of 000 or 0500 stops
it as it stops any ordinary user, while the Python installation it runs from stays readable."""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

import pytest

_CAPGET, _CAPSET = 125, 126  # x86_64 system call numbers
_VERSION_3 = 0x20080522
_DAC_BITS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capabilities(change=None) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    if libc.syscall(_CAPGET, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    if change is not None:
        data[0].effective = change(data[0].effective)
        if libc.syscall(_CAPSET, ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    return data[0].effective


@contextlib.contextmanager
def ordinary_user(tmp_path: Path):
    """Yield ``tmp_path``; within the block file permissions apply to this thread even as root."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("dropping root's file-permission override is done for Linux x86_64 only")
    try:
        _capabilities(lambda eff: eff & ~_DAC_BITS)
    except OSError as e:
        pytest.skip(f"cannot drop root's file-permission override here ({e})")
    try:
        yield tmp_path
    finally:
        _capabilities(lambda eff: eff | _DAC_BITS)
