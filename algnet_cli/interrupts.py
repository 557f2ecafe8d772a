"""Interrupts as the CLI handles them: Ctrl-C and SIGTERM, and a shield for finalising files.

SIGINT and SIGTERM both become KeyboardInterrupt (so every ``finally`` and ``except`` runs), and
the signal that came is remembered, so that the exit code says which: 130 for SIGINT, 143 for
SIGTERM. Only the first one raises: the run is already winding down, and a second one arriving
within microseconds (before any shield is up) would otherwise cut its clean-up short. Work that must complete once started (closing a partial video) runs under
:func:`shielded`: further signals are recorded there and delivered when it ends, so a burst of
Ctrl-C cannot cut a file in half.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_received: list[int] = []


def _raise(signum, frame):
    _received.append(signum)
    if len(_received) == 1:  # the first interrupt stops the run; later ones (a burst of Ctrl-C, or
        raise KeyboardInterrupt  # `timeout` passing on the one the terminal sent) must not cut its clean-up


def install() -> None:
    """Route SIGINT and SIGTERM to KeyboardInterrupt, remembering which came (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _raise)
        signal.signal(signal.SIGTERM, _raise)


def exit_code() -> int:
    """128 + the first signal that interrupted the run (SIGINT when none was recorded)."""
    return 128 + (_received[0] if _received else signal.SIGINT)


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
        if held:
            _received.extend(held)
    if held:
        raise KeyboardInterrupt
