"""``algnet triage``: which photos are blurred, before any model runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .logs import Verbose, configure
from .options import Quiet, check_outputs
from .render import printable


@handle_errors
def triage(
    inputs: Annotated[list[str], typer.Argument(help="Image and video files, folders or globs.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    csv: Annotated[
        Optional[Path], typer.Option("--csv", metavar="FILE", help="Also write the table as CSV here.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the rows and the summary as JSON instead of a table.")
    ] = False,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            metavar="0-1", help="Blur score over which a photo is blurred (default: the calibrated 0.5).", min=0, max=1
        ),
    ] = None,
    relative: Annotated[
        Optional[float],
        typer.Option(metavar="P", help="Mark the blurriest P percent of the inputs blurred instead.", min=0, max=100),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a --csv file that algnet did not write.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sort photos (and videos) by blur: a blur score from 0 (sharp) to 1 (blurred) and a verdict each.

    The score is measured on a grey copy of about one megapixel, from how steep the image's steepest
    edges are in its most blurred direction; flat regions (sky, walls) do not count. The verdicts
    come from absolute thresholds calibrated on real photos, so a single photo can be judged:
    blurred over 0.55, sharp under 0.45, unsure between. A video gets a score per sampled frame
    (8, spread over the clip) and their median. Rows are printed blurriest first, then a summary.

    Exit code 0 when every file was scored, 1 when some could not be read (each named on stderr).

    Examples:

      algnet triage photos/                         (which photos need deblurring)

      algnet triage photos/ -r --csv blur.csv

      algnet triage photos/ --relative 10           (the blurriest 10 percent)

      algnet triage clip.mp4 --json

    Then deblur only the blurred ones: algnet deblur photos/ -o sharp/ --skip-sharp
    """
    configure(quiet, verbose)
    import json

    from ..errors import UsageError
    from ..progress import Progress
    from ..triage import MEASURE, THRESHOLD, Row
    from ..triage import triage as run_triage

    if threshold is not None and relative is not None:
        raise UsageError("--threshold and --relative are alternatives: give one")
    if threshold is not None and threshold != threshold:
        raise UsageError("--threshold must be a number from 0 to 1")
    found, unread = _discover(inputs, recursive, quiet)
    paths = [src for src, _ in found]
    if not paths and not unread:
        raise UsageError("no image or video among the inputs")
    if csv is not None:  # never an input, nor a file algnet did not write (unless --overwrite)
        from ..batch import Request
        from ..batch.plan import input_guard

        input_guard(Request(tuple(inputs), recursive), found, overwrite=overwrite).claim_file(csv, "--csv")
        check_outputs([csv], None)
    with Progress(len(paths), "triage", quiet=quiet or json_out, unit="files") as bar:
        rows = run_triage(
            paths,
            threshold=THRESHOLD if threshold is None else threshold,
            relative=relative,
            on_row=lambda row: bar.advance(Path(row.path).name),
        )
    failed = [r for r in rows if r.error]
    failed += [Row(str(folder), error=f"{folder}: {reason}") for folder, (_, reason) in unread.items()]
    for r in failed:
        typer.echo(printable(f"algnet: failed: {r.error}"), err=True)
    scored = sorted((r for r in rows if r.score is not None), key=lambda r: -(r.score or 0.0))
    counts = {v: sum(r.verdict == v for r in scored) for v in ("blurred", "unsure", "sharp")}
    how = f"the blurriest {relative:g}%" if relative is not None else f"threshold {threshold or THRESHOLD:g}"
    summary = (
        f"{len(scored)} scored ({how}): {counts['blurred']} blurred, {counts['unsure']} unsure, "
        f"{counts['sharp']} sharp" + (f"; {len(failed)} failed" if failed else "")
    )
    if csv is not None:
        _write_csv(csv, scored)
    if json_out:
        doc = {"measure": MEASURE, "rows": [r.to_dict() for r in scored], "failed": [r.error for r in failed],
               "summary": {**counts, "scored": len(scored), "failed": len(failed)}}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
    elif not quiet:
        for r in scored:
            typer.echo(printable(f"{r.score:6.3f}  {r.verdict:<7s}  {r.path}  [{r.measure}]"))
        typer.echo(f"measure: {MEASURE}")
        typer.echo(summary)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _discover(inputs, recursive: bool, quiet: bool):
    """The files to score, and the folders that could not be read; linked folders walked twice are named."""
    from ..batch.discover import discover
    from ..batch.dryrun import LOOP

    loops: list[str] = []
    unread: dict = {}
    found, _ = discover(inputs, recursive, loops=loops, unread=unread)
    if not quiet:
        for path in loops:
            typer.echo(printable(f"algnet: skipped: {path}: {LOOP}"), err=True)
    return found, unread


def _write_csv(path: Path, rows) -> None:
    import csv
    import io

    from ..fileio import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "score", "verdict", "measure", "frames"])
    for r in rows:
        w.writerow([r.path, f"{r.score:.4f}", r.verdict, r.measure, " ".join(f"{s:.4f}" for s in r.frames)])
    atomic_write_text(path, buf.getvalue())
