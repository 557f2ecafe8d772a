"""A preview sheet before a batch: a few inputs' most detailed crops, before and after, with their blur scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: the side of each crop, in pixels
CROP = 384
#: the label strip above each row
LABEL_HEIGHT = 30
GAP = 8


@dataclass
class PreviewRow:
    """One input on the sheet: where its crop was taken, and the crop's blur scores before and after."""

    path: str
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, height, width
    before: float = 0.0
    after: float = 0.0
    error: str | None = None


@dataclass
class Preview:
    sheet: Path
    rows: list[PreviewRow] = field(default_factory=list)

    @property
    def failed(self) -> list[PreviewRow]:
        return [r for r in self.rows if r.error]


def pick(paths: list[Path], count: int, how: str = "spread") -> list[Path]:
    """Up to ``count`` of ``paths``: spread evenly over them (first and last included), or the
    ``blurriest`` by triage's score (in the inputs' order)."""
    if len(paths) <= count:
        return list(paths)
    if how == "blurriest":
        from ..triage import triage

        rows = triage(paths)
        scores = [-1.0 if r.score is None else r.score for r in rows]
        ranked = sorted(range(len(paths)), key=lambda i: -scores[i])
        return [paths[i] for i in sorted(ranked[:count])]
    if count == 1:
        return [paths[len(paths) // 2]]
    return [paths[round(i * (len(paths) - 1) / (count - 1))] for i in range(count)]


def _frame(path: Path, max_pixels: int | None) -> np.ndarray:
    """The image as the batch decodes it (its first page or frame), or a video's middle frame."""
    from ..video import is_video_path

    if is_video_path(path):
        from ..video.probing import sample_frames

        frames = sample_frames(path, 1, fmt="rgb24")
        if not frames:
            from ..errors import VideoError

            raise VideoError(path, "no frame could be decoded")
        return frames[0]
    from .plan import Job
    from .stills import load_image

    return load_image(Job(path, path), max_pixels).pixels


def make_preview(paths: list[Path], deblurrer, sheet: Path, *, max_pixels: int | None = None) -> Preview:
    """Run ``deblurrer`` (with the batch's options) on the most detailed ``CROP`` x ``CROP`` window of
    each of ``paths``, and write one contact sheet to ``sheet``: a row per input, before | after,
    labelled with the file name, both blur scores and the gain. A file that cannot be read gets a
    row saying why; nothing else is written."""
    from ..errors import describe_error
    from ..triage import blur_score, most_detailed_window

    preview = Preview(sheet)
    panels: list[tuple[PreviewRow, np.ndarray | None, np.ndarray | None]] = []
    for path in paths:
        row = PreviewRow(str(path))
        try:
            img = _frame(path, max_pixels)
            top, left = most_detailed_window(img, CROP)
            crop = np.ascontiguousarray(img[top : top + CROP, left : left + CROP])
            row.window = (top, left, crop.shape[0], crop.shape[1])
            out = deblurrer.deblur(crop)
            row.before, row.after = blur_score(crop), blur_score(out)
            panels.append((row, crop, out))
        except (Exception, MemoryError) as e:  # one bad input is a row that says why
            reason = describe_error(e)
            row.error = reason if str(path) in reason else f"{path}: {reason}"
            panels.append((row, None, None))
        preview.rows.append(row)
    _write_sheet(sheet, panels)
    return preview


def _label(row: PreviewRow) -> str:
    name = Path(row.path).name.encode("ascii", "replace").decode()
    if row.error:
        return f"{name}: could not be read"
    gain = row.before - row.after
    return f"{name}   blur {row.before:.2f} -> {row.after:.2f}   gain {gain:+.2f}"


def _write_sheet(path: Path, panels) -> None:
    import cv2

    from ..compare import save_sheet, to_rgb8

    width = 2 * CROP + 3 * GAP
    blocks = []
    for row, before, after in panels:
        strip = np.full((LABEL_HEIGHT, width, 3), 32, np.uint8)
        cv2.putText(strip, _label(row)[:90], (GAP, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (240, 240, 240), 1, cv2.LINE_AA)
        body = np.full((CROP + GAP, width, 3), 32, np.uint8)
        for i, img in enumerate((before, after)):
            if img is None:
                continue
            rgb = to_rgb8(img)
            x = GAP + i * (CROP + GAP)
            body[: rgb.shape[0], x : x + rgb.shape[1]] = rgb
        blocks += [strip, body]
    head = np.full((LABEL_HEIGHT, width, 3), 16, np.uint8)
    for i, text in enumerate(("before", "after (the model, with this run's options)")):
        cv2.putText(head, text, (GAP + i * (CROP + GAP), 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                    cv2.LINE_AA)  # fmt: skip
    save_sheet(path, np.vstack([head, *blocks]))
