"""PyAV (FFmpeg's libraries), imported on first use and set up once."""

from __future__ import annotations

import functools

from ..errors import UsageError


@functools.lru_cache(maxsize=1)
def pyav():
    """PyAV, imported on first use, with FFmpeg's log level set once."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise UsageError("video support needs PyAV: pip install av") from e
    av.logging.set_level(av.logging.ERROR)  # captured while reading and reported per file (see _Source.items)
    # PyAV drops a message equal to the last one it saw, process-wide: the second damaged file of a run
    # (or of a long-lived worker) would lose its "ended prematurely". Alike messages are counted per file
    # by log_lines instead.
    av.logging.set_skip_repeated(False)
    return av
