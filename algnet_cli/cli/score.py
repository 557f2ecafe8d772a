"""``algnet score``: PSNR/SSIM of predictions against ground truths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .options import Quiet, check_outputs


@handle_errors
def score(
    pred: Annotated[
        Path, typer.Argument(help="Restored images: a folder (searched recursively) or one file.", exists=True)
    ],
    gt: Annotated[
        Path,
        typer.Argument(
            help="Ground truths: a folder or one file. Pairs match by relative path, then by stem.", exists=True
        ),
    ],
    protocol: Annotated[
        str, typer.Option(help="basicsr (default), gopro (MATLAB psnr/ssim) or realblur (aligned, valid region).")
    ] = "basicsr",
    crop_border: Annotated[int, typer.Option(help="Pixels dropped on each side before scoring (basicsr).", min=0)] = 0,
    y_channel: Annotated[bool, typer.Option("--y-channel", help="Score BT.601 luma instead of RGB (basicsr).")] = False,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write a CSV report here.")] = None,
    json: Annotated[Optional[Path], typer.Option("--json", help="Write a JSON report here.")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write a Markdown report here.")] = None,
    compare: Annotated[
        Optional[Path],
        typer.Option(help="Write a PNG sheet per pair (prediction | ground truth, with a zoom) into this folder."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Pairs scored in parallel (0: one per core, up to 8).", min=0)] = 0,
    quiet: Quiet = False,
) -> None:
    """Score restored images against ground truth (PSNR in dB and SSIM).

    Exit code 0 when every pair was scored, 1 when some failed (unreadable, size mismatch) or
    none matched.

    Examples:

      algnet score out/ GoPro/test/sharp/

      algnet score out/ gt/ --protocol gopro --markdown scores.md

      algnet score out/ gt/ --y-channel --crop-border 4 --csv scores.csv --compare sheets/
    """
    from ..errors import UsageError
    from ..metrics import Protocol
    from ..progress import Progress
    from ..report import ScoreReport
    from ..scoring import match_pairs, score_pairs
    from . import render

    try:
        proto = Protocol(protocol, crop_border, y_channel)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if protocol != "basicsr" and (crop_border or y_channel):
        raise UsageError("--crop-border and --y-channel belong to the basicsr protocol")
    check_outputs([p for p in (csv, json, markdown) if p is not None], compare)  # before any scoring
    pairs, unmatched_pred, unmatched_gt = match_pairs(pred, gt)
    report = ScoreReport(proto.describe(), unmatched_pred=unmatched_pred, unmatched_gt=unmatched_gt)
    with Progress(len(pairs), "scoring", quiet=quiet, unit="pairs") as bar:
        for row in score_pairs(pairs, proto, workers=workers):
            report.rows.append(row)
            bar.advance(row.name)
            if row.error:
                typer.echo(f"algnet: failed: {row.error}", err=True)
            elif compare is not None:
                try:
                    _sheet(compare, row)
                except OSError as e:  # one sheet that cannot be written: named, and the scoring goes on
                    typer.echo(
                        f"algnet: could not write the comparison sheet for {row.name}: {e.strerror or e}", err=True
                    )
    report.write(json_path=json, csv_path=csv, markdown_path=markdown)
    if not quiet:
        render.score_table(report)
    for label, items in (
        ("prediction without ground truth", unmatched_pred),
        ("ground truth without prediction", unmatched_gt),
    ):
        for rel in items:
            typer.echo(f"algnet: unmatched {label}: {rel}", err=True)
    if not report.scored:
        typer.echo("algnet: no pair was scored", err=True)
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


def _sheet(folder: Path, row) -> None:
    from ..compare import write_sheet
    from ..images import read_image

    name = row.name.replace("/", "__").rsplit(".", 1)[0] + ".png"
    pred, gt = read_image(row.pred), read_image(row.gt)
    write_sheet(folder / name, [("prediction", pred), ("ground truth", gt)], focus=(0, 1))
