"""``algnet deblur``: folders of photos and videos in, sharp photos and videos out.

The command checks its options, builds the request, calls the library and renders what it reports:
planning, running and the run record are :mod:`algnet_cli.batch`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from . import deblur_options as o
from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .logs import Verbose, configure
from .options import CacheDir, Offline, Quiet
from .render import printable


@handle_errors
def deblur(
    inputs: o.InputsArgument,
    output_arg: o.OutputArgOption = None,
    model: o.ModelOption = "default",
    device: o.DeviceOption = "auto",
    precision: o.PrecisionOption = "auto",
    tile: o.TileOption = "auto",
    tile_overlap: o.TileOverlapOption = 32,
    max_memory: o.MaxMemoryOption = None,
    max_megapixels: o.MaxMegapixelsOption = None,
    strength: o.StrengthOption = 1.0,
    skip_sharp: o.SkipSharpOption = False,
    preview: o.PreviewOption = None,
    preview_count: o.PreviewCountOption = 8,
    preview_pick: o.PreviewPickOption = "spread",
    tlc: o.TlcOption = True,
    scan: o.ScanOption = "auto",
    recursive: o.RecursiveOption = False,
    fmt: o.FmtOption = "keep",
    quality: o.QualityOption = 95,
    suffix: o.SuffixOption = "",
    skip_existing: o.SkipExistingOption = True,
    dry_run: o.DryRunOption = False,
    json_out: o.JsonOutOption = False,
    gt: o.GtOption = None,
    codec: o.CodecOption = "auto",
    crf: o.CrfOption = 18,
    pix_fmt: o.PixFmtOption = None,
    video_format: o.VideoFormatOption = None,
    frames_out: o.FramesOutOption = None,
    to_video: o.ToVideoOption = None,
    fps: o.FpsOption = None,
    cluster: o.ClusterOption = None,
    cluster_workers: o.ClusterWorkersOption = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Deblur images and videos: every INPUT gets a sharp copy in the output folder.

    A video becomes a video with the same frames, timestamps, rotation and audio (copied when the
    container allows, else re-encoded, with a note); an interrupted video is finalised as
    NAME.partial.EXT. A folder of numbered frames becomes one video with --to-video.

    Outputs are written under a temporary name and renamed when complete, so an interrupted run
    leaves no partial file; run it again to finish the rest. Bad files are reported and skipped.
    Exit code 0 all good, 1 some files failed, 2 usage error. A run record, algnet-run.json, is
    written to the output folder.

    Examples:

      algnet deblur photos/ -o sharp/                        (the embedded default model)

      algnet deblur photos/ -o sharp/ --model ALGNet_GoPro.pth

      algnet deblur 'shots/*.jpg' -o out/ --model m.safetensors --format png --suffix _sharp

      algnet deblur big.tif -o big_sharp.tif --model m.pth --tile 512 --device cpu

      algnet deblur photos/ -o softer/ --strength 0.6          (part of the correction: less ringing)

      algnet deblur photos/ --preview sheet.png                (8 crops before and after, nothing else)

      algnet deblur photos/ -o sharp/ --skip-sharp             (copy the photos triage judges sharp)

      algnet deblur photos/ -r -o sharp/ --model m.pth --dry-run

      algnet deblur GoPro/test/blur/ -r -o out/ --model m.pth --gt GoPro/test/sharp/

      algnet deblur clip.mp4 -o clip_sharp.mp4 --crf 16

      algnet deblur clip.mov --frames-out frames/                (PNG frames, 16-bit for 10-bit sources)

      algnet deblur frames/ --to-video sharp.mp4 --fps 30        (f2 before f10)

      algnet deblur archive/ -r -o /shared/sharp/ --cluster auto (a Ray cluster; shared storage)
    """
    configure(quiet, verbose)
    from ..batch import Request, VideoOptions, describe_plan, execute, plan
    from ..errors import UsageError
    from ..video import EncodeOptions
    from .deblur_render import DeblurRenderer

    tile_size = _parse_tile(tile)
    _check_numbers(max_memory=max_memory, max_megapixels=max_megapixels, fps=fps)
    if strength != strength:  # NaN passes Click's range check
        raise UsageError("--strength must be a number from 0 to 1")
    model_args: dict[str, Any] = dict(model=model, device=device, precision=precision, tlc=tlc, scan=scan, tile=tile_size,
                      tile_overlap=tile_overlap, max_memory_gb=max_memory, strength=strength, cache_dir=cache_dir,
                      offline=offline or None, quiet=quiet or json_out)  # fmt: skip
    if preview is not None:
        _preview(inputs, recursive, preview, preview_count, preview_pick, max_megapixels,
                 {**model_args, "quiet": quiet}, gt=gt, overwrite=not skip_existing, dry_run=dry_run)  # fmt: skip
    output = _output_options(output_arg, fmt, quality, suffix, skip_existing, max_megapixels, skip_sharp)
    video = VideoOptions(EncodeOptions(codec, crf, pix_fmt, fps), video_format, frames_out, to_video)
    job = plan(Request(tuple(inputs), recursive, output, video, gt))
    if skip_sharp and video.to_video is not None:
        raise UsageError("--skip-sharp applies to images, not to the frames of --to-video")
    if cluster_workers is not None and cluster is None:
        raise UsageError("--cluster-workers only applies with --cluster")
    if not dry_run and cluster is None:
        _prefault_first_forward(job, model, device, tile_size, max_memory)
    from ..api import Deblurrer  # torch: imported while the first forward's memory is faulted in

    if dry_run:
        _dry_run(describe_plan(job, Deblurrer(**model_args).runner))
    renderer = DeblurRenderer(quiet=quiet, json_out=json_out)
    renderer.not_images(job.not_images)
    renderer.loops(job.loops)
    if cluster is not None:  # Ray is imported only here
        from ..cluster import ClusterOptions, execute_on_cluster

        outcome = execute_on_cluster(job, model_args, ClusterOptions(cluster, cluster_workers), renderer)
    else:
        outcome = execute(job, Deblurrer(**model_args), renderer)
    renderer.summary(outcome)
    raise typer.Exit(outcome.exit_code)


def _prefault_first_forward(job, model, device: str, tile: int | None, max_memory: float | None) -> None:
    """On the CPU, fault the first image's forward memory in on another core while torch and the model
    load, so that the first image costs what the others cost (see :func:`algnet_cli.cpu.prefault`)."""
    from ..batch.warm import first_forward_bytes
    from ..cpu import prefault

    gpu_nodes = ("/dev/nvidiactl", "/dev/kfd")  # an NVIDIA or a ROCm driver: `auto` may well run on a GPU
    if device not in ("auto", "cpu") or (device == "auto" and any(Path(p).exists() for p in gpu_nodes)):
        return
    nbytes = first_forward_bytes(job, model, tile, max_memory)
    if nbytes:  # the estimate covers the forward's tensors; the image's own buffers come on top (~5% at 720p)
        prefault(1.1 * nbytes)


def _dry_run(lines: list[str]) -> None:
    """Print the dry run's lines; its exit code says what the run's would: 1 when an input would fail."""
    from ..batch.dryrun import would_fail

    for line in lines:
        typer.echo(printable(line))
    raise typer.Exit(EXIT_FAILED if would_fail(lines) else EXIT_OK)


def _preview(inputs, recursive, sheet: Path, count: int, how: str, max_megapixels, model_args: dict, *,
             gt: Path | None, overwrite: bool, dry_run: bool) -> None:  # fmt: skip
    """--preview: the sheet, and nothing else (with --dry-run, not even the sheet); exits."""
    from ..api import Deblurrer
    from ..batch import Request
    from ..batch.discover import discover
    from ..batch.plan import input_guard
    from ..batch.preview import make_preview, pick
    from ..errors import UsageError
    from ..images import format_of_suffix
    from .options import check_outputs

    if how not in ("spread", "blurriest"):
        raise UsageError(f"--preview-pick must be spread or blurriest, not {how!r}")
    if sheet.is_dir() or format_of_suffix(sheet) not in ("png", "jpeg", "tiff", "webp"):
        raise UsageError(f"--preview {sheet}: name an image file to write (.png)")
    found, _ = discover(list(inputs), recursive)
    if not found:
        raise UsageError("no image or video among the inputs")
    input_guard(Request(tuple(inputs), recursive, gt=gt), found, overwrite=overwrite).claim_file(sheet, "--preview")
    chosen = pick([src for src, _ in found], count, how)
    if dry_run:
        typer.echo(printable(f"preview sheet: would write {sheet} ({len(chosen)} of {len(found)} inputs)"))
        for src in chosen:
            typer.echo(printable(f"  {src}"))
        raise typer.Exit(EXIT_OK)
    check_outputs([sheet], None)  # before the model loads (its probe makes the sheet's folder)
    max_pixels = None if max_megapixels is None else int(max_megapixels * 1e6)
    result = make_preview(chosen, Deblurrer(**model_args), sheet, max_pixels=max_pixels)
    for row in result.failed:
        typer.echo(printable(f"algnet: preview: {row.error}"), err=True)
    typer.echo(printable(f"preview sheet: {sheet} ({len(result.rows) - len(result.failed)} of {len(found)} inputs)"))
    raise typer.Exit(1 if result.failed else EXIT_OK)


def _output_options(output_arg, fmt, quality, suffix, skip_existing, max_megapixels, skip_sharp=False):
    """Where and how the outputs are written; ``-o`` ending in a slash names a folder."""
    from ..batch import OutputOptions

    return OutputOptions(
        Path(output_arg) if output_arg else None,
        folder=output_arg is not None and output_arg.endswith(("/", os.sep)),
        fmt=fmt,
        quality=quality,
        suffix=suffix,
        skip_existing=skip_existing,
        max_pixels=None if max_megapixels is None else int(max_megapixels * 1e6),
        skip_sharp=skip_sharp,
    )


def _check_numbers(**values: float | None) -> None:
    """Numbers that must be finite and positive (NaN passes Click's range checks)."""
    import math

    from ..errors import UsageError

    for name, value in values.items():
        if value is None:
            continue
        zero_ok = name == "max_megapixels"  # 0: no limit
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            flag = "--" + name.replace("_", "-")
            want = "a number of 0 or more" if zero_ok else "a number over 0"
            raise UsageError(f"{flag} must be {want}, not {value}")


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
