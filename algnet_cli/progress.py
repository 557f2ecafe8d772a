"""Progress display: a rich bar on a terminal, plain lines otherwise, nothing when quiet.

The only module outside ``cli/`` that imports rich.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished items; ``advance(label, units)`` after each. Use as a context manager.

    ``unit`` names what ``units`` counts (e.g. "MP" for megapixels) for the rate column.
    """

    def __init__(
        self,
        total: int,
        description: str,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        force_terminal: bool | None = None,
        unit: str = "items",
    ):
        self.total = total
        self.description = description
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.unit = unit
        self.done = 0
        self.units = 0.0
        self.start = time.perf_counter()
        tty = force_terminal if force_terminal is not None else self.stream.isatty()
        self._rich = None
        if not quiet and tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=self.stream, force_terminal=True)
            self._rich = RichProgress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[current]}", markup=False),
                console=console,
                transient=False,
            )
            self._task = self._rich.add_task(description, total=total or None, rate="", current="")

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.units / elapsed if elapsed > 0 else 0.0

    def advance(self, label: str = "", units: float = 1.0) -> None:
        self.done += 1
        self.units += units
        if self.quiet:
            return
        rate = _rate_text(self.rate(), self.unit, self.done, time.perf_counter() - self.start)
        if self._rich is not None:
            self._rich.update(self._task, advance=1, rate=rate, current=label[-40:])
        else:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)  # 0: the total is not known
            print(f"algnet: [{count}] {label} ({rate})", file=self.stream, flush=True)


def _rate_text(rate: float, unit: str, done: int, elapsed: float) -> str:
    """The rate in significant figures (tiny images do not read as 0.00 MP/s); items a second
    when the units are too few to show."""
    if rate >= 0.01:
        return f"{rate:.3g} {unit}/s"
    per_item = elapsed / done if done else 0.0
    return f"{per_item:.2g} s each" if per_item else ""
