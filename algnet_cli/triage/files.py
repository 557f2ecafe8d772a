"""Files through the blur measure: images and videos decoded as ``deblur`` decodes them, one row per
file, and the triage of many files, two at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .measure import MEASURE_SHORT, THRESHOLD, VIDEO_SAMPLES, blur_score, file_score, judge, relative_verdicts


def score_image(path: Path) -> float:
    """The blur score of an image file, decoded as ``deblur`` decodes it (every page and frame,
    upright): :func:`file_score`, so triage and ``--skip-sharp`` always agree."""
    from ..images import open_image

    return file_score(open_image(path).frames)


@dataclass
class Row:
    """One file's triage: its score (a video's: the median of its sampled frames), the verdict, and
    the sampled frames' scores for a video; or why it could not be scored."""

    path: str
    score: float | None = None
    verdict: str | None = None
    frames: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def measure(self) -> str:
        return f"{MEASURE_SHORT}, median of {len(self.frames)} frames" if self.frames else MEASURE_SHORT

    def to_dict(self) -> dict:
        out: dict[str, object] = {"path": self.path, "score": None if self.score is None else round(self.score, 4),
               "verdict": self.verdict, "measure": self.measure}  # fmt: skip
        if self.frames:
            out["frames"] = [round(s, 4) for s in self.frames]
        if self.error:
            out["error"] = self.error
        return out


def score_video(path: Path, samples: int = VIDEO_SAMPLES) -> list[float]:
    """Blur scores of up to ``samples`` frames spread over a video (upright, as the deblurring
    reads them)."""
    from ..video.probing import sample_frames

    frames = sample_frames(path, samples)
    if not frames:
        raise ValueError("no frame could be decoded")
    return [blur_score(f) for f in frames]


def score_path(path: Path) -> Row:
    """One file scored (verdict not yet given); a bad file gives a row with the reason, one line."""
    from ..errors import describe_error
    from ..video import is_video_path

    try:
        if is_video_path(path):
            frames = score_video(path)
            return Row(str(path), float(np.median(frames)), frames=frames)
        return Row(str(path), score_image(path))
    except (Exception, MemoryError) as e:  # one bad file never ends the triage
        reason = describe_error(e)
        return Row(str(path), error=reason if str(path) in reason else f"{path}: {reason}")


def triage(
    paths: list[Path], threshold: float = THRESHOLD, relative: float | None = None, on_row=lambda row: None
) -> list[Row]:
    """Every file scored and judged, in the order given, two at a time; ``on_row`` is called as
    each is scored (before the verdicts, which ``relative`` needs all scores for)."""
    from concurrent.futures import ThreadPoolExecutor

    rows: list[Row] = []
    with ThreadPoolExecutor(2) as pool:
        for row in pool.map(score_path, paths):
            rows.append(row)
            on_row(row)
    scored = [(r, r.score) for r in rows if r.score is not None]
    if relative is not None:
        for (r, _), v in zip(scored, relative_verdicts([s for _, s in scored], relative)):
            r.verdict = v
    else:
        for r, s in scored:
            r.verdict = judge(s, threshold)
    return rows
