"""Scoring folders: pair predictions with ground truths, score pairs in parallel, collect a report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AlgnetError, PairingError, UsageError
from .images import is_image_path, read_image
from .metrics import Protocol, score
from .report import ScoreReport, ScoreRow


@dataclass(frozen=True)
class Pair:
    name: str
    pred: Path
    gt: Path


def list_images(root: Path) -> list[Path]:
    """Image files under a folder, recursively, in a stable order (hidden files skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and is_image_path(Path(f))]
    return out


def match_pairs(pred: Path, gt: Path) -> tuple[list[Pair], list[str], list[str]]:
    """Pair by relative path, then by relative path without suffix (``x.png`` matches ``x.jpg``).

    Returns (pairs, unmatched predictions, unmatched ground truths). Where a suffix-less match is
    not one to one (a prediction whose stem matches several ground truths, or several predictions,
    ``a.jpg`` and ``a.tif``, for one ground truth), none of them is scored: each is listed as
    ``NAME (ambiguous: ...)``.
    """
    if pred.is_file() and gt.is_file():
        return [Pair(pred.name, pred, gt)], [], []
    for path in (pred, gt):  # neither a regular file nor a folder: say what it is
        if not path.is_dir():
            from .fileio import unreadable_reason

            reason = unreadable_reason(path)
            if reason is not None:
                raise UsageError(f"{path}: {reason}; give two folders or two image files")
    if not pred.is_dir() or not gt.is_dir():
        raise UsageError(f"PRED and GT must both be folders or both be files ({pred}, {gt})")
    preds = {p.relative_to(pred).as_posix(): p for p in list_images(pred)}
    gts = {p.relative_to(gt).as_posix(): p for p in list_images(gt)}
    by_stem: dict[str, list[str]] = {}
    for rel in gts:
        by_stem.setdefault(_stem(rel), []).append(rel)
    exact = {rel for rel in preds if rel in gts}
    wanted: dict[str, list[str]] = {}  # ground truth -> the predictions that match it by stem only
    unmatched = []
    for rel in preds:
        if rel in exact:
            continue
        candidates = [c for c in by_stem.get(_stem(rel), []) if c not in exact]
        if len(candidates) > 1:
            unmatched.append(f"{rel} (ambiguous: matches {', '.join(candidates)})")
        elif candidates:
            wanted.setdefault(candidates[0], []).append(rel)
        else:
            unmatched.append(rel)
    pairs, used = [], set()
    for rel in preds:
        target = rel if rel in exact else next((g for g, ps in wanted.items() if rel in ps), None)
        if target is None:
            continue
        if rel not in exact and len(wanted[target]) > 1:
            others = [p for p in wanted[target] if p != rel]
            unmatched.append(
                f"{rel} (ambiguous: {', '.join(others)} also match{'es' if len(others) == 1 else ''} {target})"
            )
            continue
        used.add(target)
        pairs.append(Pair(rel, preds[rel], gts[target]))
    return pairs, unmatched, [rel for rel in gts if rel not in used]


def _stem(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def score_pair(pair: Pair, protocol: Protocol, input_path: Path | None = None) -> ScoreRow:
    row = ScoreRow(pair.name, str(pair.pred), str(pair.gt))
    notes = []
    try:
        pred, gt = read_image(pair.pred), read_image(pair.gt)
        alpha_pred, alpha_gt = _alpha(pred), _alpha(gt)
        pred, gt = _same_channels(pred, gt, pair)
        if alpha_pred is not None and alpha_gt is not None and not np.array_equal(alpha_pred, alpha_gt):
            notes.append("alpha differs from the ground truth's (alpha is not scored)")
        elif (alpha_pred is None) != (alpha_gt is None):
            has, lacks = ("prediction", "ground truth") if alpha_gt is None else ("ground truth", "prediction")
            notes.append(f"the {has}'s alpha channel is not scored (the {lacks} has none)")
        if gt.dtype.kind == "f" and float(gt.max(initial=0.0)) > 1.0:
            notes.append(f"the ground truth's float values reach {float(gt.max()):.3g}, over 1.0 (white): "
                         "scored as they are, with a peak of 1.0")  # fmt: skip
        row.psnr, row.ssim = score(pred, gt, protocol, notes=notes)
        if input_path is not None:
            inp, _ = _same_channels(read_image(input_path), gt, pair)
            row.input_psnr, row.input_ssim = score(inp, gt, protocol)
    except PairingError as e:
        row.error = f"{pair.name}: {e}"
    except AlgnetError as e:
        row.error = str(e)
    row.note = "; ".join(dict.fromkeys(notes)) or None
    return row


def _alpha(img: np.ndarray) -> np.ndarray | None:
    return img[..., -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None


def _colour(img: np.ndarray) -> np.ndarray:
    """The colour channels (an alpha channel left out): H x W for grey, H x W x 3 for RGB."""
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[..., :-1]
    return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img


def _same_channels(a: np.ndarray, b: np.ndarray, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The two images as they are scored: same size and depth, colour only when their alpha differs
    in presence (RGBA against RGB, grey + alpha against grey)."""
    if a.shape[:2] != b.shape[:2]:
        raise PairingError(f"size mismatch: {a.shape[1]}x{a.shape[0]} vs ground truth {b.shape[1]}x{b.shape[0]}")
    if a.dtype != b.dtype:
        raise PairingError(f"bit depth differs ({a.dtype} vs ground truth {b.dtype})")
    ca = a.shape[2] if a.ndim == 3 else 1
    cb = b.shape[2] if b.ndim == 3 else 1
    if ca != cb:
        a, b = _colour(a), _colour(b)
        if a.shape != b.shape:
            raise PairingError(f"channel counts differ ({ca} vs ground truth {cb})")
    return a, b


def score_pairs(
    pairs: list[Pair],
    protocol: Protocol,
    *,
    workers: int = 0,
    inputs: dict[str, Path] | None = None,
    on_row: Callable[[ScoreRow], None] | None = None,
) -> Iterator[ScoreRow]:
    """Score pairs on a thread pool (OpenCV and numpy release the GIL); yields rows in pair order.

    At most ``2 * workers`` pairs are in flight, so memory stays bounded for any number of pairs.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    inputs = inputs or {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        it = iter(pairs)
        for pair in it:
            pending.append(pool.submit(score_pair, pair, protocol, inputs.get(pair.name)))
            if len(pending) >= 2 * workers:
                row = pending.pop(0).result()
                on_row and on_row(row)
                yield row
        for fut in pending:
            row = fut.result()
            on_row and on_row(row)
            yield row


def score_folders(
    pred: Path, gt: Path, protocol: Protocol = Protocol(), *, workers: int = 0, on_row=None
) -> ScoreReport:
    pairs, unmatched_pred, unmatched_gt = match_pairs(Path(pred), Path(gt))
    report = ScoreReport(protocol.describe(), unmatched_pred=unmatched_pred, unmatched_gt=unmatched_gt)
    report.rows = list(score_pairs(pairs, protocol, workers=workers, on_row=on_row))
    return report


def match_truth(src: Path, truths: dict[str, Path]) -> Path | None:
    """The ground truth for an input file: of ``truths`` (keyed by relative path without suffix), the
    one whose key ends the input's path, the longest such match; else the only one with the same stem."""
    src_key = "/" + src.with_suffix("").as_posix()
    hits = [k for k in truths if src_key.endswith("/" + k)]
    if hits:
        return truths[max(hits, key=len)]
    same = [p for k, p in truths.items() if k.rsplit("/", 1)[-1] == src.stem]
    return same[0] if len(same) == 1 else None
