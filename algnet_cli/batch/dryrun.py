"""``--dry-run``: what a plan would do to each file, without running the model."""

from __future__ import annotations

from ..errors import ImageReadError
from .plan import Plan

#: why a linked folder is not walked
LOOP = "a linked folder that leads to one already walked (a loop, or the same folder twice)"
#: what every line of an input that would fail holds
WOULD_FAIL = ": would fail: "


def would_fail(lines: list[str]) -> bool:
    """Whether a dry run's lines name an input that the run would fail on."""
    return any(WOULD_FAIL in line for line in lines)


def describe_plan(plan: Plan, runner) -> list[str]:
    """One line per input (size, whole or tiles, memory, or why it would fail), then the device.

    ``runner``: the :class:`~algnet_cli.runner.Runner` that would run; file names are raw (the
    caller escapes them for display)."""
    out = plan.request.output
    lines = [_image_line(job, runner, out.max_pixels, out.skip_sharp) for job in plan.images]
    lines += [_video_line(job) for job in plan.videos]
    lines += [f"{path}: skipped: {LOOP}" for path in plan.loops]
    if plan.sequence:
        lines.append(f"{len(plan.sequence)} frames -> {plan.request.video.to_video}")
    lines.append(f"device {runner.device}, precision {runner.precision_name}")
    return lines


def _image_line(job, runner, max_pixels, skip_sharp: bool = False) -> str:
    from ..images import check_header, probe_image
    from ..images.read import upright_size

    name = f"{job.src} -> {job.dst}"
    if job.problem is not None:
        return f"{name}{WOULD_FAIL}{job.problem}"
    try:
        header = probe_image(job.src)
        check_header(job.src, header, max_pixels, frames=True)
    except ImageReadError as e:
        return f"{name}{WOULD_FAIL}{e.reason}"
    if header is None:
        return f"{name}: size unknown until decoded (the header could not be parsed)"
    w, h = upright_size(job.src, header)  # the output's size: turned by its orientation
    tile = runner.plan_tile(h, w)
    how = "whole image" if not tile or tile >= max(h, w) else f"tiles of {tile}px"
    est = runner.estimate_bytes(*(min(h, tile), min(w, tile)) if tile else (h, w)) / 2**30
    exists = _exists(job)
    frames = f", {header.frames} frames" if header.frames > 1 else ""
    return f"{name}: {w}x{h}{frames}, {how}, ~{est:.1f} GiB{exists}{_sharp(job, max_pixels) if skip_sharp else ''}"


def _sharp(job, max_pixels) -> str:
    """What --skip-sharp would do with the file: its verdict from the same decode and triage as the run."""
    from .stills import load_image

    try:
        dec = load_image(job, max_pixels, skip_sharp=True)
    except Exception as e:  # noqa: BLE001 - a file that fails to decode is named by the run
        return f"; --skip-sharp cannot judge it ({e})"
    if dec.sharp:
        return f"; sharp (blur {dec.blur:.3f}): would be copied, not deblurred"
    return f"; {dec.verdict} (blur {dec.blur:.3f}): would be deblurred"


def _video_line(job) -> str:
    from ..video import probe_header

    try:
        info = probe_header(job.src)
        desc = f"{info['size'][0]}x{info['size'][1]}, {info['frames'] or '?'} frames at {info['fps']:.3f} fps"
    except Exception as e:  # noqa: BLE001 - the real run reports the reason
        desc = f"unreadable ({e})"
    if job.problem is not None:
        return f"{job.src} -> {job.dst}{WOULD_FAIL}{job.problem}"
    kind = "frames in " if job.kind == "frames" else ""
    return f"{job.src} -> {kind}{job.dst}: {desc}{_exists(job)}"


def _exists(job) -> str:
    """What the plan decided about an output that is there already."""
    if job.action == "skip":
        return " (exists, skipped)"
    if job.dst.exists():
        return " (exists, would run again: --overwrite)"
    return ""
