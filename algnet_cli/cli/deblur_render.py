"""Rendering a ``deblur`` run for the terminal: the library's events as progress bars and one-line
messages on stderr, and the outcome as a summary (or JSON on stdout)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..batch.run import Events
from .render import _err, printable, score_table

if TYPE_CHECKING:
    from ..progress import Progress


class DeblurRenderer(Events):
    """Renders a ``deblur`` run as it goes (the library's events) and its outcome: progress bars and
    one-line messages on stderr, the summary (or JSON on stdout)."""

    def __init__(self, quiet: bool = False, json_out: bool = False):
        self.quiet, self.json_out = quiet, json_out
        self.bar: Progress | None = None

    # -- events ------------------------------------------------------------------------------------
    def message(self, text: str) -> None:
        _err(f"algnet: {printable(text)}")

    def not_images(self, paths: list[str]) -> None:
        if not self.quiet:
            for path in paths:
                self.message(f"skipped (not an image file type): {path}")

    def loops(self, paths: list[str]) -> None:
        from ..batch.dryrun import LOOP

        if not self.quiet:
            for path in paths:
                self.message(f"skipped: {path}: {LOOP}")

    def images_start(self, total: int) -> None:
        self._open(total, "deblurring", "MP", quiet=not total)

    def file_done(self, r) -> None:
        if r.status == "failed":
            self.message(f"failed: {r.error}")
        for note in [] if self.quiet else r.notes:  # -q: errors only
            self.message(f"note: {r.input}: {note}")
        done_mp = r.size[0] * r.size[1] / 1e6 if r.size and r.status == "done" else 0.0
        if self.bar is not None:
            self.bar.advance(printable(Path(r.input).name), done_mp)

    def images_end(self) -> None:
        self._close()

    def video_start(self, report) -> None:
        # a count estimated from the duration (a sparse or variable-rate video) is no total to show
        total = 0 if report.frames_estimated else (report.frames_expected or 0)
        self._open(total, Path(report.input).name, "frames")

    def video_frame(self, report) -> None:
        if self.bar is not None:
            self.bar.advance(f"frame {report.frames}")

    def video_interrupted(self, report, partial) -> None:
        self._close()  # before the message, so the bar does not draw over it
        if partial is not None:
            self.message(f"interrupted; kept a valid partial video: {partial}")

    def video_done(self, report) -> None:
        self._close()
        if report.status == "failed":
            self.message(f"failed: {report.error}")
        for p in [] if self.quiet else report.problems[:5]:
            self.message(f"{report.input}: {p}")
        if len(report.problems) > 5 and not self.quiet:
            self.message(f"{report.input}: {len(report.problems) - 5} more problems (see the run record)")
        if report.status in ("done", "partial") and not (self.quiet or self.json_out):
            notes = "; ".join(report.streams)
            _err(
                f"algnet: {report.input} -> {report.output}: {report.frames} frames at {report.fps or 0:.3f} fps"
                + (f" ({notes})" if notes else "")
            )

    def _open(self, total: int, label: str, unit: str, quiet: bool = False) -> None:
        from ..progress import Progress

        self._close()
        self.bar = Progress(total, label, quiet=self.quiet or self.json_out or quiet, unit=unit).__enter__()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    # -- the outcome ---------------------------------------------------------------------------------
    def summary(self, outcome) -> None:
        import json

        import typer

        if outcome.scores is not None:
            self._scores(outcome.scores)
        if outcome.record_error:
            self.message(f"could not write the run record {outcome.record}: {outcome.record_error}")
        if self.json_out:
            typer.echo(json.dumps(outcome.summary(), indent=2))
            return
        if self.quiet:
            return
        vid = ""
        if outcome.videos:
            done = sum(v.status == "done" for v in outcome.videos)
            there = sum(v.status == "skipped" for v in outcome.videos)
            vid = f"; videos: {done} done, {there} already there, {len(outcome.bad_videos)} with problems"
        where = "not written" if outcome.record_error else str(outcome.record)
        copied = len(outcome.copied)
        copies = f", {copied} copied as they were (judged sharp)" if copied else ""
        _err(
            f"algnet: {outcome.count('done') - copied} deblurred{copies}, {outcome.count('skipped')} already there, "
            f"{len(outcome.failed)} failed{vid}; record: {where}"
        )
        for r in outcome.failed:
            _err(f"algnet:   failed: {printable(r.error)}")

    def _scores(self, report) -> None:
        for row in report.failed:
            self.message(f"not scored: {row.error}")
        for m in [] if self.quiet else report.unmatched_pred:
            self.message(f"no ground truth for {m}")
        if not (self.quiet or self.json_out) and report.rows:
            score_table(report)
