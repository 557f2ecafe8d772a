"""Terminal rendering of reports with rich."""

from __future__ import annotations

import math


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
