"""Process settings for CPU inference (standard library only).

A 1280x720 forward allocates and frees tensors of 100 to 250 MB dozens of times. glibc serves such
blocks with fresh ``mmap`` pages and returns them on free, so every one is faulted in and zeroed
again by the kernel: on a 2-core machine that cost a third of the forward. :func:`keep_freed_memory`
raises glibc's thresholds so that freed blocks stay in the heap and are reused (what jemalloc or
tcmalloc would give). The peak is unchanged; the process keeps its peak until it exits.
``ALGNET_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse large freed blocks; True when set (once per process)."""
    global _done
    if _done:
        return True
    if os.environ.get("ALGNET_MALLOC_TUNING", "1").strip() == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
