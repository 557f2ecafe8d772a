"""What the command prints on stderr besides progress: the package's log records, one line each, with
the ``algnet:`` prefix. ``-q`` shows errors only; the default adds warnings and notes; ``-v`` adds what
runs (the model, the scan backend, the precision)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print what runs: the model, scan backend, precision, tiles.")
]

#: the logger every module of the package logs under (``algnet_cli.scan``, ``algnet_cli.runner``, ...)
ROOT = "algnet_cli"


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test runner may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        from .render import printable

        try:
            print(f"algnet: {printable(record.getMessage())}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - a closed stderr must not end the run
            self.handleError(record)


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """Route the package's log records to stderr at the level the options ask for."""
    log = logging.getLogger(ROOT)
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        log.addHandler(_Stderr())
    log.propagate = False  # one line per record, ours; not again through the root logger
    log.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)


def shown(level: int = logging.WARNING) -> bool:
    """Whether records of ``level`` are printed now (the command's -q/-v)."""
    return logging.getLogger(ROOT).isEnabledFor(level)
