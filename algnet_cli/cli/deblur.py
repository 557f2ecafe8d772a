"""``algnet deblur``: folders of photos and videos in, sharp photos and videos out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import EXIT_FAILED, EXIT_OK, handle_errors
from .options import CacheDir, Offline, Quiet


@handle_errors
def deblur(
    inputs: Annotated[list[str], typer.Argument(help="Image or video files, folders or globs.", metavar="INPUT...")],
    output_arg: Annotated[
        Optional[str],
        typer.Option(
            "--output",
            "-o",
            help="Output folder (or a file name for a single input; a trailing / always means a folder).",
        ),
    ] = None,
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
    max_megapixels: Annotated[
        Optional[float],
        typer.Option(
            help="Refuse images whose header claims more megapixels than this, before decoding them (default: half the memory available; 0: no limit).",
            min=0,
        ),
    ] = None,
    tlc: Annotated[
        bool, typer.Option("--tlc/--no-tlc", help="Test-time local converter, as in the official evaluation.")
    ] = True,
    scan: Annotated[
        str, typer.Option(help="Selective-scan backend: auto, fused (CPU), chunked, triton, mamba, reference.")
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
    codec: Annotated[
        str, typer.Option(help="Video encoder: h264, h265, vp9, av1, ffv1 (lossless) or any FFmpeg encoder name.")
    ] = "h264",
    crf: Annotated[
        int, typer.Option(help="Video quality for h264/h265/vp9/av1 (lower is better).", min=0, max=63)
    ] = 18,
    pix_fmt: Annotated[
        Optional[str],
        typer.Option(
            help="Video pixel format (default: the source's when the encoder takes it; yuv444p for odd sizes)."
        ),
    ] = None,
    video_format: Annotated[
        Optional[str], typer.Option(help="Container of video outputs: mp4, mkv, mov, webm, avi (default: the input's).")
    ] = None,
    frames_out: Annotated[
        Optional[Path],
        typer.Option(
            help="Write each video's deblurred frames as PNG (16-bit for sources above 8 bit) under DIR/NAME/."
        ),
    ] = None,
    to_video: Annotated[
        Optional[Path], typer.Option(help="Encode the input images, in natural order, as frames of this video.")
    ] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate for --to-video (default 25).", min=0.001)] = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    quiet: Quiet = False,
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

      algnet deblur photos/ -r -o sharp/ --model m.pth --dry-run

      algnet deblur GoPro/test/blur/ -r -o out/ --model m.pth --gt GoPro/test/sharp/

      algnet deblur clip.mp4 -o clip_sharp.mp4 --crf 16

      algnet deblur clip.mov --frames-out frames/                (PNG frames, 16-bit for 10-bit sources)

      algnet deblur frames/ --to-video sharp.mp4 --fps 30        (f2 before f10)
    """
    import json
    import os

    from .. import interrupts
    from ..batch import (
        RUN_RECORD,
        BatchOutcome,
        check_writable,
        clean_stale_temps,
        discover,
        image_pipeline,
        plan_jobs,
        run_batch,
        write_run_record,
    )
    from ..errors import UsageError
    from ..images import FORMATS
    from ..progress import Progress
    from ..video import EncodeOptions, is_video_path

    if fmt != "keep" and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; use keep, {', '.join(FORMATS)}")
    if video_format is not None and "." + video_format.lower().lstrip(".") not in VIDEO_FORMATS:
        raise UsageError(f"unknown --video-format {video_format!r}; use {', '.join(v[1:] for v in VIDEO_FORMATS)}")
    tile_size = _parse_tile(tile)
    output = Path(output_arg) if output_arg else None
    folder_out = output_arg is not None and output_arg.endswith(("/", os.sep))
    found, not_images = discover(inputs, recursive, exclude=output)
    max_pixels = None if max_megapixels is None else int(max_megapixels * 1e6)
    if not found:
        raise UsageError("no input images or videos found")
    video_found = [(src, rel) for src, rel in found if is_video_path(src)]
    found = [(src, rel) for src, rel in found if not is_video_path(src)]
    encode = EncodeOptions(codec=codec, crf=crf, pix_fmt=pix_fmt, fps=fps)
    if to_video is not None:
        if video_found:
            raise UsageError(f"--to-video takes image frames, not videos ({video_found[0][0]})")
        if not is_video_path(to_video):
            raise UsageError(f"--to-video {to_video}: not a video file name (use .mp4, .mkv, .mov, .webm, ...)")
        if gt is not None:
            raise UsageError("--gt scores image outputs; it cannot score the frames of a --to-video video")
    elif fps is not None:
        raise UsageError("--fps only applies with --to-video")
    if output is None and ((found and to_video is None) or (video_found and frames_out is None)):
        raise UsageError("missing -o/--output (an output folder, or a file name for a single input)")
    jobs = plan_jobs(found, output, fmt, suffix, folder=folder_out) if found and to_video is None else []
    video_jobs = _plan_videos(
        video_found, output, frames_out, video_format, suffix, [j.src for j in jobs], folder=folder_out
    )

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
        _print_plan(jobs, runner, max_pixels)
        _print_video_plan(video_jobs, found if to_video is not None else [], to_video)
        raise typer.Exit(EXIT_OK)

    interrupts.install()
    check_writable([j.dst.parent for j in jobs] + [j.dst if j.frames else j.dst.parent for j in video_jobs])
    clean_stale_temps(jobs + [j for j in video_jobs if not j.frames])
    if to_video is not None:
        report = _frames_to_video(found, to_video, deblurrer, encode, skip_existing, quiet, json_out)
        info = _run_info(model, model_path, deblurrer, tile_size, tile_overlap)
        try:
            write_run_record(to_video.parent, info, BatchOutcome(), [report])
        except OSError as e:
            typer.echo(f"algnet: could not write the run record in {to_video.parent}: {e.strerror or e}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        raise typer.Exit(EXIT_FAILED if report.status not in ("done", "skipped") else EXIT_OK)
    load, process, save = image_pipeline(deblurrer, quality, max_pixels)
    failures = []

    def on_result(r):
        if r.status == "failed":
            failures.append(r)
            typer.echo(f"algnet: failed: {printable(r.error)}", err=True)
        for note in r.notes:
            typer.echo(f"algnet: note: {printable(r.input)}: {note}", err=True)
        bar.advance(
            printable(Path(r.input).name), (r.size[0] * r.size[1] / 1e6) if r.size and r.status == "done" else 0.0
        )

    for path in not_images:
        if not quiet:
            typer.echo(f"algnet: skipped (not an image file type): {path}", err=True)
    with Progress(len(jobs), "deblurring", quiet=quiet or json_out or not jobs, unit="MP") as bar:
        outcome = run_batch(jobs, process, load, save, skip_existing=skip_existing, on_result=on_result)
    outcome.not_images = not_images
    videos = _run_videos(video_jobs, deblurrer, encode, skip_existing, quiet or json_out)
    single = len(jobs) + len(video_jobs) == 1 and (jobs or video_jobs)[0].dst == output
    record_dir = output if output is not None and not single else (output.parent if output else frames_out)
    info = _run_info(model, model_path, deblurrer, tile_size, tile_overlap)
    scores = _score_against(gt, jobs, outcome, quiet or json_out) if gt is not None else None
    if scores is not None:
        info["scores"] = scores.summary()
        info["scores"]["protocol"] = scores.protocol
    record_failed = False
    try:
        record = write_run_record(record_dir, info, outcome, videos)
    except OSError as e:  # a full disk: the summary below still tells what happened
        record, record_failed = record_dir / RUN_RECORD, True
        typer.echo(f"algnet: could not write the run record {record}: {e.strerror or e}", err=True)
    done = sum(r.status == "done" for r in outcome.results)
    skipped = sum(r.status == "skipped" for r in outcome.results)
    bad_videos = [v for v in videos if v.status in ("failed", "partial")]
    summary = {
        "done": done,
        "skipped": skipped,
        "failed": len(outcome.failed),
        "not_images": len(not_images),
        "failures": [r.error for r in outcome.failed],
        "record": None if record_failed else str(record),
    }
    if videos:
        summary["videos"] = [v.to_dict() for v in videos]
    if scores is not None:
        summary["scores"] = scores.summary()
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        vid = ""
        if videos:
            vdone = sum(v.status == "done" for v in videos)
            vid = f"; videos: {vdone} done, {sum(v.status == 'skipped' for v in videos)} already there, {len(bad_videos)} with problems"
        where = "not written" if record_failed else str(record)
        typer.echo(
            f"{done} deblurred, {skipped} already there, {len(outcome.failed)} failed{vid}; record: {where}", err=True
        )
        for r in outcome.failed:
            typer.echo(f"  failed: {printable(r.error)}", err=True)
    raise typer.Exit(EXIT_FAILED if outcome.failed or bad_videos or record_failed else EXIT_OK)


VIDEO_FORMATS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")


class _VideoJob:
    def __init__(self, src: Path, dst: Path, frames: bool):
        self.src, self.dst, self.frames = src, dst, frames


def _plan_videos(found, output, frames_out, video_format, suffix, image_srcs, folder: bool = False) -> list:
    from ..errors import UsageError
    from ..video import is_video_path

    jobs = []
    single = (
        len(found) == 1
        and not image_srcs
        and output is not None
        and not folder
        and is_video_path(output)
        and not output.is_dir()
    )
    for src, rel in found:
        if frames_out is not None:
            jobs.append(_VideoJob(src, frames_out / rel.with_suffix(""), True))
            continue
        if single:
            dst = output
        else:
            ext = "." + video_format.lower().lstrip(".") if video_format else rel.suffix
            dst = output / rel.with_name(rel.stem + suffix + ext)
        if dst.resolve() == src.resolve():
            raise UsageError(f"{dst}: the output would overwrite an input; choose another -o folder or a --suffix")
        jobs.append(_VideoJob(src, dst, False))
    seen = {}
    for j in jobs:
        key = j.dst.resolve()
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {j.src} would both be written to {j.dst}; use --suffix to tell them apart"
            )
        seen[key] = j.src
    return jobs


def _video_progress(report, quiet):
    from ..progress import Progress

    total = report.frames_expected or 0
    return Progress(total, Path(report.input).name, quiet=quiet, unit="frames")


def _run_videos(video_jobs, deblurrer, encode, skip_existing, quiet) -> list:
    from ..errors import AlgnetError
    from ..video import VideoReport, partial_path, process_video

    reports = []
    for job in video_jobs:
        if skip_existing and job.dst.exists() and (not job.frames or any(job.dst.iterdir())):
            reports.append(VideoReport(str(job.src), str(job.dst), status="skipped"))
            continue
        if not job.frames:
            partial_path(job.dst).unlink(missing_ok=True)  # superseded by this run
        state = {}

        def on_start(report, state=state):
            state["bar"] = _video_progress(report, quiet).__enter__()

        def on_frame(report, state=state):
            state["bar"].advance(f"frame {report.frames}")

        def close_bar(state=state):
            if "bar" in state:
                state.pop("bar").__exit__(None, None, None)

        try:
            report = process_video(
                job.src,
                None if job.frames else job.dst,
                deblurrer.deblur,
                encode,
                frames_out=job.dst if job.frames else None,
                on_frame=on_frame,
                on_start=on_start,
                restore_many=deblurrer.deblur_many,
                batch=deblurrer.frames_per_batch,
            )
        except KeyboardInterrupt:
            close_bar()  # before the message, so the bar does not draw over it
            partial = partial_path(job.dst)
            if not job.frames and partial.exists():
                typer.echo(f"algnet: interrupted; kept a valid partial video: {partial}", err=True)
            raise
        except AlgnetError as e:
            report = VideoReport(str(job.src), str(job.dst), status="failed", error=str(e))
            typer.echo(f"algnet: failed: {e}", err=True)
        finally:
            close_bar()
        _echo_video(report, quiet)
        reports.append(report)
    return reports


def _echo_video(report, quiet) -> None:
    for p in report.problems[:5]:
        typer.echo(f"algnet: {report.input}: {p}", err=True)
    if len(report.problems) > 5:
        typer.echo(f"algnet: {report.input}: {len(report.problems) - 5} more problems (see the run record)", err=True)
    if report.status in ("done", "partial") and not quiet:
        notes = "; ".join(report.streams)
        typer.echo(
            f"{report.input} -> {report.output}: {report.frames} frames at {report.fps or 0:.3f} fps"
            + (f" ({notes})" if notes else ""),
            err=True,
        )


def _frames_to_video(found, to_video, deblurrer, encode, skip_existing, quiet, json_out):
    """Deblur numbered frames into one video; returns its report (status skipped when it exists)."""
    import json

    from ..progress import Progress
    from ..video import VideoReport, process_sequence

    if skip_existing and to_video.exists():
        typer.echo(f"algnet: {to_video} exists; use --overwrite to replace it", err=True)
        return VideoReport(str(found[0][0].parent), str(to_video), status="skipped")
    frames = [src for src, _ in found]
    with Progress(len(frames), to_video.name, quiet=quiet or json_out, unit="frames") as bar:
        report = process_sequence(
            frames, to_video, deblurrer.deblur, encode, on_frame=lambda r: bar.advance(f"frame {r.frames}")
        )
    _echo_video(report, quiet or json_out)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    return report


def _print_video_plan(video_jobs, frames, to_video) -> None:
    from ..video import probe_header

    for job in video_jobs:
        try:
            info = probe_header(job.src)
            desc = f"{info['size'][0]}x{info['size'][1]}, {info['frames'] or '?'} frames at {info['fps']:.3f} fps"
        except Exception as e:  # noqa: BLE001 - the real run reports the reason
            desc = f"unreadable ({e})"
        kind = "frames in" if job.frames else ""
        exists = " (exists, skipped)" if job.dst.exists() else ""
        typer.echo(f"{job.src} -> {kind + ' ' if kind else ''}{job.dst}: {desc}{exists}")
    if to_video is not None:
        typer.echo(f"{len(frames)} frames -> {to_video}")


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


def _print_plan(jobs, runner, max_pixels) -> None:
    from ..errors import ImageReadError
    from ..images import check_header, probe_image

    for job in jobs:
        name = f"{printable(job.src)} -> {printable(job.dst)}"
        try:
            header = probe_image(job.src)
            check_header(job.src, header, max_pixels, frames=True)
        except ImageReadError as e:
            typer.echo(f"{name}: would fail: {e.reason}")
            continue
        if header is None:
            typer.echo(f"{name}: size unknown until decoded (the header could not be parsed)")
            continue
        w, h = header.width, header.height
        tile = runner.plan_tile(h, w)
        how = "whole image" if not tile or tile >= max(h, w) else f"tiles of {tile}px"
        est = runner.estimate_bytes(*(min(h, tile), min(w, tile)) if tile else (h, w)) / 2**30
        exists = " (exists, skipped)" if job.dst.exists() else ""
        frames = f", {header.frames} frames" if header.frames > 1 else ""
        typer.echo(f"{name}: {w}x{h}{frames}, {how}, ~{est:.1f} GiB{exists}")
    typer.echo(f"device {runner.device}, precision {runner.precision_name}")


def printable(text: object) -> str:
    """Text for one line of output: control characters (a newline in a file name) shown escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
