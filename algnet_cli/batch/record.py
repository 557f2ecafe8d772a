"""What a run did: per-file results, the outcome of a whole run, and the run record written beside the outputs."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_write_text
from ..report import ScoreReport

RUN_RECORD = "algnet-run.json"


@dataclass
class FileResult:
    """One image file: done, skipped (its output exists) or failed (with the reason, one line).

    size: (width, height) as decoded. seconds: model time. run: what the runner carried out for it
    (tiles, out-of-memory splits, fp32 fallbacks). notes: what the user should know (CMYK converted,
    frames of an animation). place: on a cluster, where it ran.
    """

    input: str
    output: str
    status: str  # done | skipped | failed
    size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None
    run: dict = field(default_factory=lambda: {"tiles": 0})
    notes: list[str] = field(default_factory=list)
    place: dict | None = None  # on a cluster: the node, host, process and worker that did it
    image: dict | None = None  # the input as read: format, stored colour, bits, sample format, ...
    usage: bool = False  # it failed for a usage error (the exit code says 2)
    blur: dict | None = None  # blur scores (0 sharp, 1 blurred): input, output, and the gain
    triage: dict | None = None  # with --skip-sharp: the verdict, and whether it was copied or deblurred

    @property
    def tiles(self) -> int:
        return self.run.get("tiles", 0)

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "size": list(self.size) if self.size else None,
            "seconds": round(self.seconds, 4),
            **self.run,
            **({"error": self.error} if self.error else {}),
            **({"notes": self.notes} if self.notes else {}),
            **({"image": self.image} if self.image else {}),
            **({"blur": self.blur} if self.blur else {}),
            **({"triage": self.triage} if self.triage else {}),
            **(
                {"node": self.place["node"], "worker": self.place["worker"], "host": self.place["host"]}
                if self.place
                else {}
            ),
        }


@dataclass
class Outcome:
    """Everything one ``deblur`` run did; the run record and the command's summary are built from it.

    results: image files, in input order. videos: one report per video (or frame sequence).
    not_images: files found in folders whose type is not an image or video. scores: against the
    ground truth, when one was given. record: where the run record went, or record_error: why it
    could not be written.
    """

    results: list[FileResult] = field(default_factory=list)
    videos: list = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    scores: ScoreReport | None = None
    record: Path | None = None
    record_error: str | None = None

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 all good; 2 when a file failed for a usage error; 1 when anything else failed."""
        if any(getattr(r, "usage", False) for r in [*self.results, *self.videos]):
            return 2
        return 0 if self.ok else 1

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def copied(self) -> list[FileResult]:
        """Files judged sharp by --skip-sharp: written without the model (copied, or converted)."""
        return [r for r in self.results if r.status == "done" and (r.triage or {}).get("action") == "copied"]

    @property
    def bad_videos(self) -> list:
        return [v for v in self.videos if v.status in ("failed", "partial")]

    @property
    def ok(self) -> bool:
        """Every file done or already there, every pair scored (with --gt), and the record written."""
        unscored = bool(self.scores is not None and self.scores.failed)
        return not (self.failed or self.bad_videos or self.record_error or unscored)

    def summary(self) -> dict:
        """The machine-readable summary (``algnet deblur --json``)."""
        out = {
            "done": self.count("done"),
            "deblurred": self.count("done") - len(self.copied),
            "copied": len(self.copied),  # judged sharp (--skip-sharp): not deblurred
            "copies": [r.input for r in self.copied],
            "skipped": self.count("skipped"),
            "failed": len(self.failed),
            "not_images": len(self.not_images),
            "failures": [r.error for r in self.failed],
            "record": None if self.record_error else str(self.record),
        }
        if self.videos:
            out["videos"] = [v.to_dict() for v in self.videos]
        if self.scores is not None:
            out["scores"] = self.scores.summary()
        return out


def write_run_record(folder: Path, info: dict, outcome: Outcome, status: str = "finished") -> Path:
    """``algnet-run.json`` in ``folder``, written atomically: ``info`` (the model and runner as they
    ran), then every file's result and every video's report."""
    from .. import __version__

    record = {"status": status, **info}
    record["versions"] = {"algnet-cli": __version__, "python": platform.python_version(), **record.get("versions", {})}
    record["files"] = [r.to_dict() for r in outcome.results]
    record["not_images"] = outcome.not_images
    if outcome.videos:
        record["videos"] = [v.to_dict() for v in outcome.videos]
    if outcome.scores is not None:
        record["scores"] = {**outcome.scores.summary(), "protocol": outcome.scores.protocol}
    path = folder / RUN_RECORD
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


def mark_run_started(folder: Path) -> None:
    """Before any work, a run record saying the run has started, where no record is yet: the folder is
    then known as algnet's, so that a run interrupted before its end can be resumed into it (see
    :mod:`algnet_cli.outputs`). The full record replaces it at the end."""
    from .. import __version__

    path = folder / RUN_RECORD
    if not path.exists():
        record = {"status": "started", "versions": {"algnet-cli": __version__}, "files": []}
        atomic_write_text(path, json.dumps(record, indent=2))
