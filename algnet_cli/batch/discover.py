"""Finding the inputs: files, folders and globs expanded into sources and their relative output paths."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import UsageError
from ..images import is_image_path
from ..video import is_video_path


def discover(
    inputs: list[str], recursive: bool, exclude: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders and globs into (source, relative output path); also the skipped non-images.

    Folders contribute image and video files in natural order (``f2`` before ``f10``; all levels
    with ``recursive``, mirroring the tree); files named explicitly are taken whatever their
    suffix, so a bad one is reported rather than ignored. Entries with an image or video suffix
    that are not readable regular files (broken links, FIFOs, ...) are kept too, so that the run
    names them. ``exclude`` (the output folder) is never descended into, so that a run writing
    inside its input tree does not read its own outputs back. A path named twice counts once.
    """
    from natsort import natsorted

    found: list[tuple[Path, Path]] = []
    skipped: list[str] = []
    skip_dir = exclude.resolve() if exclude is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            walker = os.walk(p) if recursive else [(str(p), [], os.listdir(p))]
            for dirpath, dirnames, filenames in walker:
                dirnames[:] = natsorted(
                    d for d in dirnames if not d.startswith(".") and (Path(dirpath) / d).resolve() != skip_dir
                )
                for name in natsorted(filenames):
                    f = Path(dirpath) / name
                    if name.startswith(".") or f.is_dir():
                        continue
                    if is_image_path(f) or is_video_path(f):
                        found.append((f, f.relative_to(p)))
                    elif f.is_file():
                        skipped.append(str(f))
        elif os.path.lexists(p):  # broken links too: reading them says why they fail
            found.append((p, Path(p.name)))
        else:
            matches = natsorted(glob.glob(item, recursive=recursive))
            if not matches:
                raise UsageError(f"{item}: no such file, folder or matching glob")
            for m in matches:
                mp = Path(m)
                if not mp.is_dir():
                    found.append((mp, Path(mp.name)))
    return _unique(found), skipped


def _unique(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The first of each source named more than once (as itself, through a link, or by two globs)."""
    seen: set[Path] = set()
    out = []
    for src, rel in found:
        key = identity(src)
        if key not in seen:
            seen.add(key)
            out.append((src, rel))
    return out


def identity(path: Path) -> Path:
    """The resolved path, or the absolute one for a link loop (which reading then reports)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()
