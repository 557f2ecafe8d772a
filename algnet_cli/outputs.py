"""The one owner of every path algnet writes: inputs are never written, folders the tool did not
write are never written into without ``--overwrite`` (standard library, plus Pillow to read a PNG's
text chunks).

A command builds one :class:`OutputGuard`, names its inputs by role (inputs, predictions, ground
truth, training photos, a checkpoint to fine-tune) and claims every path it will write before any
work: outputs, sheets, reports, frame folders, the run record, exports. A refused claim is a
:class:`~algnet_cli.errors.UsageError` (exit code 2) naming the option, the path and the input it
would destroy. Nothing is created or written by a claim: a dry run claims too.

The rules:

- a file claim may not be an input file of any role (by resolved path or by inode, so hard links
  and symbolic links count), nor a folder, nor a path another option of the same run claims;
- an existing file that algnet did not write (its content says so: :func:`written_by_algnet`) is
  replaced only with ``--overwrite``;
- a folder claim may not be an input folder, nor lie inside an input tree that is walked;
- a non-empty folder is written into only when it holds the marker of an earlier run of the same
  writer (the run record, a frame folder's record, a training run's state), or with ``--overwrite``.
  Even then the writer replaces only files it would itself write.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

#: our own hidden files and folders (temporaries of atomic writes, locks, records, a video's
#: ``.NAME.algnet-segments`` folder): never a reason to call a folder the user's
_OWN_RX = re.compile(r"^\.(algnet-|.+\.algnet-)")


@dataclass(frozen=True)
class _Input:
    shown: Path  # as the user named it
    real: Path
    role: str
    folder: bool
    walked: bool  # a folder whose sub-folders are read too

    def describe(self) -> str:
        return f"{'the ' + self.role + ' folder' if self.folder else 'the ' + self.role} {self.shown}"


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


@dataclass
class OutputGuard:
    """Inputs by role, and the paths claimed for writing so far (see the module's rules).

    overwrite: the user passed ``--overwrite``: existing files algnet did not write may be replaced,
    and folders holding such files may be written into (inputs stay refused whatever it says).
    """

    overwrite: bool = False
    _inputs: list[_Input] = field(default_factory=list)
    _input_inodes: dict[tuple[int, int], _Input] = field(default_factory=dict)
    _input_reals: dict[Path, _Input] = field(default_factory=dict)
    _claims: dict[Path, tuple[str, Path]] = field(default_factory=dict)

    # -- inputs -------------------------------------------------------------------------------
    def add_input(self, path: str | Path, role: str = "input", *, walked: bool = False) -> None:
        """An input of ``role``: a file, or a folder (``walked``: its sub-folders are read too)."""
        path = Path(path)
        entry = _Input(path, _real(path), role, os.path.isdir(path), walked)
        self._inputs.append(entry)
        if not entry.folder:
            self._input_reals.setdefault(entry.real, entry)
            node = _inode(path)
            if node is not None:
                self._input_inodes.setdefault(node, entry)

    def add_inputs(self, paths: Iterable[str | Path], role: str = "input", *, walked: bool = False) -> None:
        for p in paths:
            self.add_input(p, role, walked=walked)

    def _tree_holding(self, path: Path) -> _Input | None:
        """The input folder whose files (or, walked, whose tree) include ``path``."""
        real = _real(path)
        for inp in self._inputs:
            if inp.folder and (real.parent == inp.real or (inp.walked and inp.real in real.parents)):
                return inp
        return None

    def _input_file(self, path: Path) -> _Input | None:
        hit = self._input_reals.get(_real(path))
        if hit is None and os.path.lexists(path):
            node = _inode(path)
            hit = self._input_inodes.get(node) if node is not None else None
        return hit

    # -- claims -------------------------------------------------------------------------------
    def claim_file(self, path: str | Path, option: str, *, existing: str = "refuse") -> Path:
        """Claim the file ``path`` for ``option`` (as the user wrote it: ``--csv``).

        existing: what an existing file that is not an input may be: ``refuse`` (replaced only when
        algnet wrote it, or with ``--overwrite``), or ``keep`` (the writer itself skips or replaces
        it by its own resume rule, as ``deblur``'s outputs do).
        """
        path = Path(path)
        label = f"{option} {path}".strip()
        if os.path.isdir(path):
            raise UsageError(f"{label}: is a folder; name a file to write")
        _check_parents(path, label)
        hit = self._input_file(path)
        if hit is not None:
            raise UsageError(f"{label}: would overwrite {hit.describe()}; name another file")
        foreign = os.path.lexists(path) and not written_by_algnet(path)  # an existing file of the user's
        tree = self._tree_holding(path)
        if tree is not None and foreign:
            raise UsageError(f"{label}: is a file inside {tree.describe()}; name a file outside the inputs")
        self._remember(path, option, label)
        if existing == "refuse" and not self.overwrite and foreign:
            raise UsageError(
                f"{label}: exists and was not written by algnet; name a new file, remove it, or pass --overwrite"
            )
        return path

    def claim_folder(self, path: str | Path, option: str, *, markers: Iterable[str] = ()) -> Path:
        """Claim the folder ``path`` for ``option``'s files. ``markers``: the names of the files an
        earlier run of this writer leaves there; a non-empty folder without one of them is the
        user's, written into only with ``--overwrite``."""
        path = Path(path)
        label = f"{option} {path}".strip()
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UsageError(f"{label}: is a file, not a folder")
        _check_parents(path, label)
        real = _real(path)
        for inp in self._inputs:
            if not inp.folder:
                continue
            if inp.real == real:
                raise UsageError(f"{label}: is {inp.describe()}; write into another folder")
            if inp.walked and inp.real in real.parents:
                raise UsageError(
                    f"{label}: lies inside {inp.describe()}, which is read with its sub-folders; write outside it"
                )
        self._remember(path, option, label)
        if not self.overwrite:
            foreign = _foreign_entries(path, tuple(markers))
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise UsageError(
                    f"{label}: holds files algnet did not write ({shown}); name a new or empty folder, or pass "
                    "--overwrite to write among them (only files of the same names are then replaced)"
                )
        return path

    def _remember(self, path: Path, option: str, label: str) -> None:
        real = _real(path)
        other = self._claims.get(real)
        if other is not None and other[0] != option:
            raise UsageError(f"{label}: is also {other[0]} {other[1]}; give each its own path")
        self._claims[real] = (option, path)


def _check_parents(path: Path, label: str) -> None:
    """A file in the way of the folders above ``path`` is a usage error, named."""
    for up in Path(os.path.abspath(path)).parents:
        if os.path.lexists(up):
            if not os.path.isdir(up):
                raise UsageError(f"{label}: {up} is a file, not a folder")
            return


def _foreign_entries(folder: Path, markers: tuple[str, ...]) -> list[str]:
    """The names in ``folder`` that make it the user's: everything, unless one of ``markers`` is there
    (then nothing). Our own hidden files, and sub-folders holding a marker, do not count."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UsageError(f"{folder}: cannot be listed ({e.strerror or e})") from None
    if any(m in names for m in markers):
        return []
    return [n for n in names if not _OWN_RX.match(n) and not _marked_folder(folder / n, markers)]


def _marked_folder(path: Path, markers: tuple[str, ...]) -> bool:
    """Whether ``path`` is a folder holding one of ``markers`` (a frame folder inside --frames-out)."""
    return os.path.isdir(path) and any(os.path.lexists(path / m) for m in markers)


# -- what algnet wrote, recognised by content -----------------------------------------------------
#: the first bytes of the text reports algnet writes (CSV headers, Markdown's first line)
_TEXT_HEADS = (b"# protocol: ", b"name,pred,gt,", b"path,score,verdict,", b"Protocol: `")
#: JSON documents algnet writes hold all the keys of one of these sets
_JSON_KEYS = ({"protocol", "summary", "pairs"}, {"measure", "rows", "summary"}, {"versions", "files"})
#: the PNG text chunk algnet's sheets carry
SOFTWARE = "algnet-cli"


def written_by_algnet(path: str | Path) -> bool:
    """Whether the file at ``path`` is one algnet writes (a report, a sheet, a run record) or empty:
    judged by its content, never by its name."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        size = path.stat().st_size
        if size == 0:
            return True
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    if head.startswith(_TEXT_HEADS):
        return True
    if head.lstrip().startswith(b"{") and size < 256 << 20:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and any(keys <= doc.keys() for keys in _JSON_KEYS)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                return str(getattr(im, "text", {}).get("Software", "")).startswith(SOFTWARE)
        except (OSError, ValueError, SyntaxError):
            return False
    return False
