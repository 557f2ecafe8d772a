"""``algnet score``: PSNR/SSIM of predictions against ground truths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .logs import Verbose, configure
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
        Literal["basicsr", "gopro", "realblur"],
        typer.Option(help="basicsr (BasicSR's), gopro (MATLAB psnr/ssim) or realblur (aligned, valid region)."),
    ] = "basicsr",
    crop_border: Annotated[
        int, typer.Option(metavar="PIXELS", help="Pixels dropped on each side before scoring (basicsr).", min=0)
    ] = 0,
    y_channel: Annotated[bool, typer.Option("--y-channel", help="Score BT.601 luma instead of RGB (basicsr).")] = False,
    csv: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE", help="Write a CSV report here.")] = None,
    report_json: Annotated[
        Optional[Path], typer.Option("--report-json", metavar="FILE", help="Write a JSON report here.")
    ] = None,
    markdown: Annotated[
        Optional[Path], typer.Option("--markdown", metavar="FILE", help="Write a Markdown report here.")
    ] = None,
    compare: Annotated[
        Optional[Path],
        typer.Option(
            metavar="DIR", help="Write a PNG sheet per pair (prediction | ground truth, with a zoom) into this folder."
        ),
    ] = None,
    threads: Annotated[
        int, typer.Option(metavar="N", help="Pairs scored at once, on threads (0: one per core, up to 8).", min=0)
    ] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace report files, and write into a --compare folder, that algnet did not write."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the JSON report on stdout instead of the table.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Score restored images against ground truth (PSNR in dB and SSIM).

    Exit code 0 when every pair was scored, 1 when some failed (unreadable, size mismatch) or
    none matched.

    Examples:

      algnet score out/ GoPro/test/sharp/

      algnet score out/ gt/ --protocol gopro --markdown scores.md

      algnet score out/ gt/ --json > scores.json

      algnet score out/ gt/ --y-channel --crop-border 4 --csv scores.csv --compare sheets/
    """
    configure(quiet, verbose)
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
    pairs, unmatched_pred, unmatched_gt = match_pairs(pred, gt)
    sheets = _claim_outputs(pred, gt, pairs, csv, report_json, markdown, compare, overwrite)  # before any scoring
    check_outputs([p for p in (csv, report_json, markdown) if p is not None], compare)
    report = ScoreReport(proto.describe(), unmatched_pred=unmatched_pred, unmatched_gt=unmatched_gt)
    with Progress(len(pairs), "scoring", quiet=quiet or json_out, unit="pairs") as bar:
        for row in score_pairs(pairs, proto, workers=threads):
            report.rows.append(row)
            bar.advance(row.name)
            if row.error:
                typer.echo(f"algnet: failed: {render.printable(row.error)}", err=True)
            elif compare is not None:
                try:
                    assert sheets is not None  # claimed with --compare
                    _sheet(compare, row, sheets[row.name])
                except OSError as e:  # one sheet that cannot be written: named, and the scoring goes on
                    typer.echo(
                        f"algnet: could not write the comparison sheet for {row.name}: {e.strerror or e}", err=True
                    )
    report.write(json_path=report_json, csv_path=csv, markdown_path=markdown)
    if json_out:
        typer.echo(report.to_json())
    elif not quiet:
        render.score_table(report)
    for label, items in (
        ("prediction without ground truth", unmatched_pred),
        ("ground truth without prediction", unmatched_gt),
    ):
        for rel in items:
            typer.echo(f"algnet: unmatched {label}: {render.printable(rel)}", err=True)
    if not report.scored:
        typer.echo("algnet: no pair was scored", err=True)
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


#: the marker of a --compare folder: an index of its sheets, written with them
COMPARE_INDEX = ".algnet-compare.json"


def _claim_outputs(pred, gt, pairs, csv, report_json, markdown, compare, overwrite: bool) -> dict[str, str] | None:
    """Every report and sheet is claimed before any scoring: never a prediction or a ground truth,
    never inside their folders, never a file or folder algnet did not write (unless --overwrite)."""
    from ..outputs import OutputGuard

    guard = OutputGuard(overwrite=overwrite)
    guard.add_input(pred, "prediction", walked=True)
    guard.add_input(gt, "ground truth", walked=True)
    for p in pairs:
        guard.add_input(p.pred, "prediction")
        guard.add_input(p.gt, "ground truth")
    for option, path in (("--csv", csv), ("--report-json", report_json), ("--markdown", markdown)):
        if path is not None:
            guard.claim_file(path, option)
    if compare is None:
        return None
    guard.claim_folder(compare, "--compare", markers=(COMPARE_INDEX,))
    sheets = sheet_names([p.name for p in pairs])
    for name in sheets.values():
        guard.claim_file(compare / name, "--compare")
    return sheets


def sheet_names(pairs: list[str]) -> dict[str, str]:
    """Each pair's sheet file name, all different (case folded, as on case-insensitive disks): its
    relative path with / as __ and .png for its suffix; where two would meet (a.png and a.tif;
    x/y.png and x__y.png), the pair's own suffix is kept, then a number is added."""

    def flat(name: str, keep_suffix: bool) -> str:
        base = name.replace("/", "__")
        return (base if keep_suffix else base.rsplit(".", 1)[0]) + ".png"

    plain = [flat(n, False).lower() for n in pairs]
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name, low in zip(pairs, plain):
        cand = flat(name, plain.count(low) > 1)
        k = 2
        while cand.lower() in taken:
            cand, k = flat(name, True)[:-4] + f"~{k}.png", k + 1
        taken.add(cand.lower())
        out[name] = cand
    return out


def _sheet(folder: Path, row, name: str) -> None:
    from ..compare import write_sheet
    from ..fileio import atomic_write_text
    from ..images import read_image

    index = folder / COMPARE_INDEX
    if not index.exists():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index, '{"algnet": "comparison sheets"}\n')
    pred, gt = read_image(row.pred), read_image(row.gt)
    write_sheet(folder / name, [("prediction", pred), ("ground truth", gt)], focus=(0, 1))
