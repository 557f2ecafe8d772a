"""One table from exception types to one-line messages and exit codes.

Tracebacks are shown only when ALGNET_DEBUG=1.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from ..errors import AlgnetError, CheckpointError, ScanBackendError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 1  # the output did not all arrive; quiet, as Click ends a command whose reader went away

#: (exception type, label, exit code), first match wins
ERROR_TABLE: list[tuple[type[BaseException], str, int]] = [
    (UsageError, "usage error", EXIT_USAGE),
    (CheckpointError, "checkpoint error", EXIT_FAILED),
    (ScanBackendError, "scan backend unavailable", EXIT_USAGE),
    (AlgnetError, "error", EXIT_FAILED),
    (MemoryError, "out of memory", EXIT_FAILED),
    (OSError, "file error", EXIT_FAILED),
]

F = TypeVar("F", bound=Callable)


def classify(exc: BaseException) -> tuple[str, int]:
    for typ, label, code in ERROR_TABLE:
        if isinstance(exc, typ):
            return label, code
    return "internal error", EXIT_FAILED


def handle_errors(fn: F) -> F:
    """Wrap a command: known errors become one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            from .. import interrupts

            interrupts.ignore_further()  # a late Ctrl-C must not print a traceback during shutdown
            print("algnet: interrupted", file=sys.stderr)
            raise SystemExit(interrupts.exit_code()) from None
        except SystemExit:
            raise
        except BrokenPipeError:  # the reader went away (| head): end quietly, as a shell tool does
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush cannot fail loudly
            except (OSError, ValueError):
                pass
            raise SystemExit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # every error reaches the user as one line
            import click
            import typer

            if isinstance(
                exc,
                (
                    typer.Exit,
                    typer.Abort,
                    click.exceptions.Exit,
                    click.exceptions.ClickException,
                    click.exceptions.Abort,
                ),
            ):
                raise
            if os.environ.get("ALGNET_DEBUG") == "1":
                raise
            label, code = classify(exc)
            text = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.strerror:  # a plain sentence: "PATH: what went wrong"
                text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
            if label == "internal error":
                text += " (set ALGNET_DEBUG=1 for a traceback)"
            print(f"algnet: {label}: {text}", file=sys.stderr)
            raise SystemExit(code) from None

    return wrapper  # type: ignore[return-value]
