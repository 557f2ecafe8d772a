"""Frame folders (``--frames-out``): numbered PNGs written one at a time, and the record that says
which run wrote them and whether it finished."""

from __future__ import annotations

import json
from pathlib import Path

from .decode import VideoReport


class FrameFolderWriter:
    """Numbered PNGs (16-bit for sources above 8 bit), each written atomically."""

    decode_audio: set[int] = set()

    def __init__(self, folder: Path, high_bit: bool, source: str = "", expected: int | None = None):
        self.folder = folder
        self.high_bit = high_bit
        self.source, self.expected = source, expected
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / FRAMES_MANIFEST).exists():  # our folder: an earlier run's frames are never mixed in
            for stale in frame_files(folder):
                stale.unlink(missing_ok=True)
        self._manifest("partial", 0)  # (a folder of the user's, under --overwrite: only same names replaced)

    def _manifest(self, status: str, frames: int) -> None:
        from ..fileio import atomic_write_text

        record = {"source": self.source, "status": status, "frames": frames, "frames_expected": self.expected}
        atomic_write_text(self.folder / FRAMES_MANIFEST, json.dumps(record, indent=1) + "\n")

    def write(self, kind: str, a, b) -> None:
        from ..images import write_image

        if kind == "frame":
            write_image(self.folder / f"{a.index:06d}.png", a.pixels)

    def finish(self, report: VideoReport, interrupted: bool) -> None:
        report.output = str(self.folder)
        self._manifest("partial" if interrupted else "done", report.frames)

    def abandon(self) -> None:
        pass


#: the record of a frame folder: the source, how many frames, and whether it is complete
FRAMES_MANIFEST = ".algnet-frames.json"


def frame_files(folder: Path) -> list[Path]:
    """The frame files (NNNNNN.png) that a frame folder holds."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.suffix == ".png" and p.stem.isdigit() and len(p.stem) == 6]


def frames_complete(folder: Path) -> bool:
    """Whether a frame folder holds a finished run's frames (its record says done, every frame there)."""
    try:
        record = json.loads((folder / FRAMES_MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return record.get("status") == "done" and len(frame_files(folder)) >= int(record.get("frames") or 0) > 0
