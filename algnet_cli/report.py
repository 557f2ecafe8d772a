"""Scoring results and their writers (JSON, CSV, Markdown)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field

from .fileio import atomic_write_text

#: identical pairs have infinite PSNR; means count them as this many dB (BasicSR's convention)
PSNR_CAP_DB = 100.0


@dataclass
class ScoreRow:
    """One scored pair. psnr/ssim are None when the pair failed (see ``error``)."""

    name: str
    pred: str
    gt: str
    psnr: float | None = None
    ssim: float | None = None
    error: str | None = None
    input_psnr: float | None = None  # the blurred input against the same ground truth, when known
    input_ssim: float | None = None
    note: str | None = None  # what the scores do not show (an alpha channel that differs)


@dataclass
class ScoreReport:
    protocol: dict
    rows: list[ScoreRow] = field(default_factory=list)
    unmatched_pred: list[str] = field(default_factory=list)
    unmatched_gt: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[ScoreRow]:
        return [r for r in self.rows if r.error is None]

    @property
    def failed(self) -> list[ScoreRow]:
        return [r for r in self.rows if r.error is not None]

    def mean(self, attr: str) -> float | None:
        """The mean over scored pairs; PSNR values are capped at PSNR_CAP_DB first, so that identical
        pairs (infinite PSNR) count as PSNR_CAP_DB and the mean stays finite (as BasicSR does)."""
        vals = [v for r in self.scored if (v := getattr(r, attr)) is not None and not math.isnan(v)]
        if "psnr" in attr:
            vals = [min(v, PSNR_CAP_DB) for v in vals]
        return sum(vals) / len(vals) if vals else None

    def summary(self) -> dict:
        out = {
            "pairs": len(self.scored),
            "failed": len(self.failed),
            "psnr": self.mean("psnr"),
            "ssim": self.mean("ssim"),
            "psnr_cap_db": PSNR_CAP_DB,
            "identical_pairs": sum(r.psnr == math.inf for r in self.scored),
        }
        if any(r.input_psnr is not None for r in self.scored):
            out.update(input_psnr=self.mean("input_psnr"), input_ssim=self.mean("input_ssim"))
            out.update(delta_psnr=_sub(out["psnr"], out["input_psnr"]), delta_ssim=_sub(out["ssim"], out["input_ssim"]))
        return out

    def to_json(self) -> str:
        data = {
            "protocol": self.protocol,
            "summary": self.summary(),
            "pairs": [asdict(r) for r in self.rows],
            "unmatched_predictions": self.unmatched_pred,
            "unmatched_ground_truths": self.unmatched_gt,
        }
        return json.dumps(_finite(data), indent=2, allow_nan=False)

    def to_csv(self) -> str:
        """Plain CSV: a header row, one row per pair (with its error or note), the mean, then a row
        for each file left unmatched (the protocol is in the JSON report)."""
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = ["name", "pred", "gt", "psnr", "ssim", "input_psnr", "input_ssim", "error", "note"]
        w.writerow(cols)
        for r in self.rows:
            w.writerow([_fmt(getattr(r, c)) for c in cols])
        s = self.summary()
        w.writerow(["MEAN", "", "", _fmt(s["psnr"]), _fmt(s["ssim"]), _fmt(s.get("input_psnr")),
                    _fmt(s.get("input_ssim")), "", f"{plural(s['pairs'], 'pair')} scored, {s['failed']} failed"])  # fmt: skip
        for name in self.unmatched_pred:
            w.writerow([name, "", "", "", "", "", "", "unmatched prediction (no ground truth)", ""])
        for name in self.unmatched_gt:
            w.writerow([name, "", "", "", "", "", "", "unmatched ground truth (no prediction)", ""])
        return buf.getvalue()

    def to_markdown(self) -> str:
        p = self.protocol
        lines = [f"Protocol: `{p['name']}` ({', '.join(f'{k}={v}' for k, v in p.items() if k != 'name')})", ""]
        gain = any(r.input_psnr is not None for r in self.rows)
        head = ["image", "PSNR (dB)", "SSIM"] + (["input PSNR", "input SSIM", "ΔPSNR", "ΔSSIM"] if gain else [])
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in self.rows:
            if r.error:
                cells = [_md(r.name), "failed: " + _md(r.error), ""] + ([""] * 4 if gain else [])
            else:
                cells = [_md(r.name), _fmt(r.psnr), _fmt(r.ssim)]
                if gain:
                    cells += [
                        _fmt(r.input_psnr),
                        _fmt(r.input_ssim),
                        _fmt(_sub(r.psnr, r.input_psnr)),
                        _fmt(_sub(r.ssim, r.input_ssim)),
                    ]
            lines.append("| " + " | ".join(cells) + " |")
        s = self.summary()
        cells = ["**mean**", _fmt(s["psnr"]), _fmt(s["ssim"])]
        if gain:
            cells += [_fmt(s["input_psnr"]), _fmt(s["input_ssim"]), _fmt(s["delta_psnr"]), _fmt(s["delta_ssim"])]
        lines.append("| " + " | ".join(cells) + " |")
        if s["identical_pairs"]:
            lines += [
                "",
                f"{plural(s['identical_pairs'], 'identical pair')} (infinite PSNR) count"
                f"{'s' if s['identical_pairs'] == 1 else ''} as {PSNR_CAP_DB:g} dB in the mean.",
            ]
        for label, items in (
            ("Unmatched predictions", self.unmatched_pred),
            ("Unmatched ground truths", self.unmatched_gt),
        ):
            if items:
                lines += ["", f"{label}: " + ", ".join(_md(i) for i in items)]
        return "\n".join(lines) + "\n"

    def write(self, json_path=None, csv_path=None, markdown_path=None) -> None:
        for path, render in ((json_path, self.to_json), (csv_path, self.to_csv), (markdown_path, self.to_markdown)):
            if path is not None:
                atomic_write_text(path, render())


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 pair``, ``2 pairs``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _sub(a, b):
    return None if a is None or b is None else a - b


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.3f}"
    return str(v)


def _md(text: str) -> str:
    """Text as literal Markdown table-cell content: every character Markdown or HTML would read as
    syntax escaped, a line break shown as \\n."""
    out = str(text).replace("\\", "\\\\")
    for ch in "|*_`[]#~":
        out = out.replace(ch, "\\" + ch)
    out = out.replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("\r", "\\r").replace("\n", "\\n")


def _finite(obj):
    """JSON has no infinity nor NaN: identical images report PSNR as the string "inf"; a value that
    is not a number becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
