"""``algnet deblur``: folders of photos in, sharp photos out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .options import CacheDir, Offline, Quiet


@handle_errors
def deblur(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or globs.", metavar="INPUT...")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (or a file name for a single input).")],
    model: Annotated[
        str, typer.Option(help="A registry name, hf://owner/repo[@rev]/file, or a .safetensors/.pth path.")
    ] = "default",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on capable GPUs, else fp32), fp32, bf16 or fp16.")
    ] = "auto",
    tile: Annotated[
        str, typer.Option(help="auto (whole image when it fits the memory budget), 0 (whole) or a tile side in pixels.")
    ] = "auto",
    tile_overlap: Annotated[int, typer.Option(help="Overlap between tiles, in pixels.", min=0)] = 32,
    max_memory: Annotated[
        Optional[float],
        typer.Option(
            help="Memory budget per image in GiB for --tile auto (default: 3 on CPU, leaving room for image buffers under 4, and 80% of free GPU memory)."
        ),
    ] = None,
    tlc: Annotated[
        bool, typer.Option("--tlc/--no-tlc", help="Test-time local converter, as in the official evaluation.")
    ] = True,
    scan: Annotated[
        str, typer.Option(help="Selective-scan backend: auto, chunked, triton, mamba, reference.")
    ] = "auto",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into sub-folders, mirroring the tree.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="keep, png, jpg, tif, webp or bmp.")] = "keep",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality.", min=1, max=100)] = 95,
    suffix: Annotated[str, typer.Option(help="Added to each output file's stem, e.g. _sharp.")] = "",
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing/--overwrite", help="Keep outputs that already exist (resume), or replace them."),
    ] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (files, sizes, whole or tiles, memory) and stop.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    gt: Annotated[
        Optional[Path],
        typer.Option(
            "--gt",
            help="Ground-truth folder: score each output and its input against it (PSNR/SSIM, basicsr).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    quiet: Quiet = False,
) -> None:
    """Deblur images: every INPUT image gets a sharp copy in the output folder.

    Outputs are written under a temporary name and renamed when complete, so an interrupted run
    leaves no partial file; run it again to finish the rest. Bad files are reported and skipped.
    Exit code 0 all good, 1 some files failed, 2 usage error. A run record, algnet-run.json, is
    written to the output folder.

    Examples:

      algnet deblur photos/ -o sharp/                        (the embedded default model)

      algnet deblur photos/ -o sharp/ --model ALGNet_GoPro.pth

      algnet deblur 'shots/*.jpg' -o out/ --model m.safetensors --format png --suffix _sharp

      algnet deblur big.tif -o big_sharp.tif --model m.pth --tile 512 --device cpu

      algnet deblur photos/ -r -o sharp/ --model m.pth --dry-run

      algnet deblur GoPro/test/blur/ -r -o out/ --model m.pth --gt GoPro/test/sharp/
    """
    import json
    import signal

    from ..batch import clean_stale_temps, discover, image_pipeline, plan_jobs, run_batch, write_run_record
    from ..errors import UsageError
    from ..images import FORMATS
    from ..progress import Progress

    if fmt != "keep" and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; use keep, {', '.join(FORMATS)}")
    tile_size = _parse_tile(tile)
    found, not_images = discover(inputs, recursive)
    if not found:
        raise UsageError("no input images found")
    jobs = plan_jobs(found, output, fmt, suffix)

    from ..api import Deblurrer
    from ..hub import resolve

    model_path = resolve(model, cache=cache_dir, offline=offline or None, quiet=quiet or json_out)
    deblurrer = Deblurrer(
        str(model_path),
        device=device,
        precision=precision,
        tlc=tlc,
        scan=scan,
        tile=tile_size,
        tile_overlap=tile_overlap,
        max_memory_gb=max_memory,
    )
    runner = deblurrer.runner
    if dry_run:
        _print_plan(jobs, runner)
        raise typer.Exit(EXIT_OK)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    clean_stale_temps(jobs)
    load, process, save = image_pipeline(deblurrer, quality)
    failures = []

    def on_result(r):
        if r.status == "failed":
            failures.append(r)
            typer.echo(f"algnet: failed: {r.error}", err=True)
        bar.advance(Path(r.input).name, (r.size[0] * r.size[1] / 1e6) if r.size and r.status == "done" else 0.0)

    for path in not_images:
        if not quiet:
            typer.echo(f"algnet: skipped (not an image file type): {path}", err=True)
    with Progress(len(jobs), "deblurring", quiet=quiet or json_out, unit="MP") as bar:
        outcome = run_batch(jobs, process, load, save, skip_existing=skip_existing, on_result=on_result)
    outcome.not_images = not_images
    record_dir = output if not (len(jobs) == 1 and jobs[0].dst == output) else output.parent
    info = _run_info(model, model_path, deblurrer, tile_size, tile_overlap)
    record = write_run_record(record_dir, info, outcome)
    scores = _score_against(gt, jobs, outcome, quiet or json_out) if gt is not None else None
    if scores is not None:
        info["scores"] = scores.summary()
        info["scores"]["protocol"] = scores.protocol
        record = write_run_record(record_dir, info, outcome)
    done = sum(r.status == "done" for r in outcome.results)
    skipped = sum(r.status == "skipped" for r in outcome.results)
    summary = {
        "done": done,
        "skipped": skipped,
        "failed": len(outcome.failed),
        "not_images": len(not_images),
        "failures": [r.error for r in outcome.failed],
        "record": str(record),
    }
    if scores is not None:
        summary["scores"] = scores.summary()
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        typer.echo(
            f"{done} deblurred, {skipped} already there, {len(outcome.failed)} failed; record: {record}", err=True
        )
        for r in outcome.failed:
            typer.echo(f"  failed: {r.error}", err=True)
    raise typer.Exit(EXIT_FAILED if outcome.failed else EXIT_OK)


def _score_against(gt: Path, jobs, outcome, quiet: bool):
    """Score every written output, and its input, against the ground truth matched by path or stem."""
    from ..metrics import Protocol
    from ..report import ScoreReport
    from ..scoring import Pair, list_images, score_pairs
    from . import render

    truths = {p.relative_to(gt).with_suffix("").as_posix(): p for p in list_images(gt)}
    ok = {r.output for r in outcome.results if r.status in ("done", "skipped")}
    pairs, inputs, missing = [], {}, []
    for job in jobs:
        if str(job.dst) not in ok:
            continue
        target = _match_truth(job.src, truths)
        if target is None:
            missing.append(str(job.src))
            continue
        pairs.append(Pair(str(job.dst), job.dst, target))
        inputs[str(job.dst)] = job.src
    protocol = Protocol()
    report = ScoreReport(protocol.describe(), unmatched_pred=missing)
    report.rows = list(score_pairs(pairs, protocol, inputs=inputs))
    for row in report.failed:
        typer.echo(f"algnet: not scored: {row.error}", err=True)
    for m in missing:
        typer.echo(f"algnet: no ground truth for {m}", err=True)
    if not quiet and report.rows:
        render.score_table(report)
    return report


def _match_truth(src: Path, truths: dict[str, Path]) -> Path | None:
    """The ground truth whose relative path (without suffix) ends the input's path, the longest such
    match; else the only one with the same stem."""
    src_key = "/" + src.with_suffix("").as_posix()
    hits = [k for k in truths if src_key.endswith("/" + k)]
    if hits:
        return truths[max(hits, key=len)]
    same = [p for k, p in truths.items() if k.rsplit("/", 1)[-1] == src.stem]
    return same[0] if len(same) == 1 else None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _parse_tile(tile: str) -> int | None:
    from ..errors import UsageError

    if tile == "auto":
        return None
    try:
        value = int(tile)
    except ValueError:
        raise UsageError(f"--tile must be auto, 0 or a number of pixels, not {tile!r}") from None
    if value < 0 or 0 < value < 32:
        raise UsageError("--tile must be 0 (whole image) or at least 32 pixels")
    return value


def _print_plan(jobs, runner) -> None:
    from PIL import Image

    for job in jobs:
        try:
            with Image.open(job.src) as im:
                w, h = im.size
        except Exception:  # the real run reports the reason
            typer.echo(f"{job.src} -> {job.dst}: unreadable")
            continue
        tile = runner.plan_tile(h, w)
        how = "whole image" if not tile or tile >= max(h, w) else f"tiles of {tile}px"
        est = runner.estimate_bytes(*(min(h, tile), min(w, tile)) if tile else (h, w)) / 2**30
        exists = " (exists, skipped)" if job.dst.exists() else ""
        typer.echo(f"{job.src} -> {job.dst}: {w}x{h}, {how}, ~{est:.1f} GiB{exists}")
    typer.echo(f"device {runner.device}, precision {runner.precision_name}")


def _run_info(model_source, model_path, deblurrer, tile, overlap) -> dict:
    import torch

    from ..fileio import sha256_file
    from ..ops import resolve_backend

    runner = deblurrer.runner
    return {
        "model": {
            "source": str(model_source),
            "path": str(model_path),
            "sha256": sha256_file(model_path),
            "config": deblurrer.model.config.to_dict(),
            "tlc": list(deblurrer.model.tlc_train_size) if deblurrer.model.tlc_train_size else None,
        },
        "device": str(runner.device),
        "precision": runner.precision_name,
        "scan_backend": resolve_backend(_backend(deblurrer.model), runner.device.type),
        "tiling": {"tile": "auto" if tile is None else tile, "overlap": overlap},
        "fp32_fallbacks": runner.fallbacks,
        "versions": {"torch": torch.__version__},
    }


def _backend(model) -> str | None:
    return next((m.scan_backend for m in model.modules() if hasattr(m, "scan_backend")), None)
