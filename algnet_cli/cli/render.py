"""Terminal rendering of reports with rich."""

from __future__ import annotations

import math
from pathlib import Path


def _f(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def score_table(report, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    gain = any(r.input_psnr is not None for r in report.rows)
    t = Table(title=f"scores ({report.protocol['name']})")
    t.add_column("image")
    t.add_column("PSNR dB", justify="right")
    t.add_column("SSIM", justify="right")
    if gain:
        for c in ("input PSNR", "input SSIM", "ΔPSNR", "ΔSSIM"):
            t.add_column(c, justify="right")
    for r in report.rows:
        if r.error:
            t.add_row(Text(printable(r.name)), "failed", "", *([""] * 4 if gain else []))
            continue
        cells = [Text(printable(r.name)), _f(r.psnr), _f(r.ssim, 4)]
        if gain:
            cells += [_f(r.input_psnr), _f(r.input_ssim, 4), _f(r.psnr - r.input_psnr), _f(r.ssim - r.input_ssim, 4)]
        t.add_row(*cells)
    s = report.summary()
    cells = ["mean", _f(s["psnr"]), _f(s["ssim"], 4)]
    if gain:
        cells += [_f(s["input_psnr"]), _f(s["input_ssim"], 4), _f(s["delta_psnr"]), _f(s["delta_ssim"], 4)]
    t.add_row(*cells, style="bold")
    console.print(t)
    if s["identical_pairs"]:
        from ..report import plural

        n = s["identical_pairs"]
        console.print(
            f"{plural(n, 'identical pair')} (infinite PSNR) count{'s' if n == 1 else ''} as {s['psnr_cap_db']:g} dB "
            "in the mean"
        )


def printable(text: object) -> str:
    """Text for one line of output: control characters (a newline in a file name) shown escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _err(text: str) -> None:
    import typer

    typer.echo(text, err=True)


class DeblurRenderer:
    """Renders a ``deblur`` run as it goes (the library's events) and its outcome: progress bars and
    one-line messages on stderr, the summary (or JSON on stdout)."""

    def __init__(self, quiet: bool = False, json_out: bool = False):
        self.quiet, self.json_out = quiet, json_out
        self.bar = None

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
        for note in r.notes:
            self.message(f"note: {r.input}: {note}")
        done_mp = r.size[0] * r.size[1] / 1e6 if r.size and r.status == "done" else 0.0
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
        for p in report.problems[:5]:
            self.message(f"{report.input}: {p}")
        if len(report.problems) > 5:
            self.message(f"{report.input}: {len(report.problems) - 5} more problems (see the run record)")
        if report.status in ("done", "partial") and not (self.quiet or self.json_out):
            notes = "; ".join(report.streams)
            _err(
                f"{report.input} -> {report.output}: {report.frames} frames at {report.fps or 0:.3f} fps"
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
            f"{outcome.count('done') - copied} deblurred{copies}, {outcome.count('skipped')} already there, "
            f"{len(outcome.failed)} failed{vid}; record: {where}"
        )
        for r in outcome.failed:
            _err(f"  failed: {printable(r.error)}")

    def _scores(self, report) -> None:
        for row in report.failed:
            self.message(f"not scored: {row.error}")
        for m in report.unmatched_pred:
            self.message(f"no ground truth for {m}")
        if not (self.quiet or self.json_out) and report.rows:
            score_table(report)
