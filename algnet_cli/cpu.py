"""Process settings for CPU inference (standard library only).

A 1280x720 forward allocates and frees tensors of 100 to 250 MB dozens of times. glibc serves such
blocks with fresh ``mmap`` pages and returns them on free, so every one is faulted in and zeroed
again by the kernel: on a 2-core machine that cost a third of the forward. :func:`keep_freed_memory`
raises glibc's thresholds so that freed blocks stay in the heap and are reused (what jemalloc or
tcmalloc would give). The peak is unchanged; the process keeps its peak until it exits.
``ALGNET_MALLOC_TUNING=0`` turns it off.

The first forward still faults every page of its peak in, about a fifth of its time. :func:`prefault`
does that on another core while torch and the model load, so that the first image costs what the
others cost.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse large freed blocks; True when set (once per process)."""
    global _done
    if _done:
        return True
    if _turned_off("ALGNET_MALLOC_TUNING") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


#: the blocks :func:`prefault` takes: under the raised mmap threshold, so they come from (and go back to) the heap
_BLOCK = 128 << 20


def prefault(nbytes: float) -> threading.Thread | None:
    """Fault in about ``nbytes`` of heap on a background thread, then free it, so that the next forward
    reuses pages already mapped instead of faulting each one in.

    Call it from the thread that runs the model (its blocks come from that thread's heap), early: the
    work runs on another core while this thread goes on (ctypes releases the GIL). Capped at half the
    memory available. Returns the thread (join it to wait), or None when nothing was done: not glibc,
    tuning off (``ALGNET_MALLOC_TUNING=0``, or ``ALGNET_PREFAULT=0`` for this alone), or less than one
    block asked for.
    """
    if _turned_off("ALGNET_PREFAULT") or not keep_freed_memory():
        return None
    nbytes = min(float(nbytes), 0.5 * (available_memory() or 0))
    count = int(nbytes // _BLOCK)
    if count < 1:
        return None
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    blocks = [b for b in (libc.malloc(_BLOCK) for _ in range(count)) if b]

    def touch() -> None:
        # written page by page: madvise(MADV_POPULATE_WRITE) would do it in one call, but holds the
        # memory map's lock meanwhile, stalling the imports' mmaps on the other thread
        try:
            for b in blocks:
                ctypes.memset(b, 0, _BLOCK)
        finally:
            for b in blocks:
                libc.free(b)  # back to the heap, kept there with its pages mapped

    thread = threading.Thread(target=touch, name="algnet-prefault", daemon=True)
    thread.start()
    return thread


def available_memory() -> int | None:
    """Bytes of memory available now (MemAvailable, else the free physical pages); None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _turned_off(name: str) -> bool:
    return os.environ.get(name, "1").strip() == "0"


def memory_state() -> str:
    """What this process does with its memory, as ``algnet doctor`` says it (nothing is set here)."""
    if platform.libc_ver()[0] != "glibc":
        return "glibc's allocator settings do not apply here"
    if _turned_off("ALGNET_MALLOC_TUNING"):
        return "freed blocks returned to the system (ALGNET_MALLOC_TUNING=0); no prefault"
    prefault_on = "no (ALGNET_PREFAULT=0)" if _turned_off("ALGNET_PREFAULT") else "yes"
    return f"freed blocks kept for reuse; first forward's memory faulted in during start-up: {prefault_on}"


def cpu_facts() -> tuple[str, list[str]]:
    """This CPU's model name and its native bf16 features (``avx512_bf16``, ``amx_bf16``), from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
