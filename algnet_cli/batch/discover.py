"""Finding the inputs: files, folders and globs expanded into sources and their relative output paths."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import UsageError
from ..images import is_image_path
from ..video import is_video_path


def discover(
    inputs: list[str],
    recursive: bool,
    exclude: Path | None = None,
    loops: list[str] | None = None,
    unread: dict[Path, tuple[Path, str]] | None = None,
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders and globs into (source, relative output path); also the skipped non-images.

    Folders contribute image and video files in natural order (``f2`` before ``f10``; all levels
    with ``recursive``, mirroring the tree, through linked folders too); files named explicitly are
    taken whatever their suffix, so a bad one is reported rather than ignored. Entries with an image
    or video suffix that are not readable regular files (broken links, FIFOs, ...) are kept too, so
    that the run names them. A folder that cannot be listed goes into ``unread`` (its path: its
    relative output path and the reason), to be named as a failure. A linked folder that leads back to one already walked (a loop, or the same folder twice) is not
    walked again: its path goes into ``loops``. ``exclude`` (the output folder) is never descended
    into, so that a run writing inside its input tree does not read its own outputs back. A path
    named twice counts once.
    """
    from natsort import natsorted

    found: list[tuple[Path, Path]] = []
    skipped: list[str] = []
    skip_dir = exclude.resolve() if exclude is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            _walk(p, recursive, skip_dir, found, skipped, loops if loops is not None else [],
                  unread if unread is not None else {})  # fmt: skip
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


def _walk(top: Path, recursive: bool, skip_dir, found: list, skipped: list, loops: list, unread: dict) -> None:
    from natsort import natsorted

    def unreadable(e: OSError) -> None:  # a folder that cannot be listed: a failure that names it
        where = Path(e.filename) if e.filename else top
        rel = where.relative_to(top) if where != top else Path(where.name)
        unread[where] = (rel, f"a folder that cannot be read ({e.strerror or e}): the files in it were not processed")

    seen = {_dir_key(top)}
    walker = os.walk(top, followlinks=True, onerror=unreadable) if recursive else _listing(top, unreadable)
    for dirpath, dirnames, filenames in walker:
        keep = []
        for d in natsorted(dirnames):
            sub = Path(dirpath) / d
            if d.startswith(".") or sub.resolve() == skip_dir:
                continue
            key = _dir_key(sub)
            if key in seen:
                loops.append(str(sub))
                continue
            seen.add(key)
            keep.append(d)
        dirnames[:] = keep
        for name in natsorted(filenames):
            f = Path(dirpath) / name
            if name.startswith(".") or f.is_dir():
                continue
            if is_image_path(f) or is_video_path(f):
                found.append((f, f.relative_to(top)))
            elif f.is_file():
                skipped.append(str(f))


def _listing(top: Path, onerror):
    try:
        yield str(top), [], os.listdir(top)
    except OSError as e:
        onerror(e)


def _dir_key(path: Path):
    """A folder's identity (device and inode), whatever link leads to it; its path if it cannot be stat'ed."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return str(path)


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
