"""Interrupts as the CLI handles them: Ctrl-C and SIGTERM, and a shield for finalising files.

SIGINT and SIGTERM both become KeyboardInterrupt (so every ``finally`` and ``except`` runs), and
the signal that came is remembered, so that the exit code says which: 130 for SIGINT, 143 for
SIGTERM. Handlers are installed only for the length of a run (:func:`routed`) and the previous
ones restored after it, so a Python process calling the library keeps its own. Only the first one raises: the run is already winding down, and a second one arriving
within microseconds (before any shield is up) would otherwise cut its clean-up short. Work that must complete once started (closing a partial video) runs under
:func:`shielded`: further signals are recorded there and delivered when it ends, so a burst of
Ctrl-C cannot cut a file in half.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class _Run:
    """One run's interrupts: the signals received while it ran."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def handler(self, signum, frame) -> None:
        self.received.append(signum)
        if len(self.received) == 1:  # the first interrupt stops the run; later ones (a burst of Ctrl-C, or
            raise KeyboardInterrupt  # `timeout` passing on the one the terminal sent) must not cut its clean-up


_current: _Run | None = None
_last: int | None = None  # the signal that interrupted the latest run, for the exit code


@contextlib.contextmanager
def routed():
    """Within the block, SIGINT and SIGTERM become KeyboardInterrupt (main thread only); on leaving
    it, the handlers that were there before are restored. Each block keeps its own state, so every
    interrupted run in a process raises."""
    global _current, _last
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    run, outer = _Run(), _current
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, run.handler)
    _current = run
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _current = outer
        if run.received:
            _last = run.received[0]


def exit_code() -> int:
    """128 + the first signal that interrupted the latest run (SIGINT when none was recorded)."""
    return 128 + (_last or signal.SIGINT)


def ignore_further() -> None:
    """After an interrupt, on the way out: further signals must not break the interpreter's shutdown."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextlib.contextmanager
def shielded():
    """Run the block to its end: SIGINT/SIGTERM arriving meanwhile are held back, then delivered
    as one KeyboardInterrupt when the block ends (unless one is already on its way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held and _current is not None:
            _current.received.extend(held)
    if held:
        raise KeyboardInterrupt
