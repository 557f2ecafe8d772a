"""Check that every figure the docs quote from a benchmark appears in its results file.

A figure is quoted as a Markdown link to its file, ``[1.97 s](../benchmarks/results/model_cpu.txt)``; every
number in the link's text must appear in that file as it is written (not as part of a longer number). On
``docs/benchmarks.md`` every table row's figure (its last column) must be such a link.

Run: python benchmarks/check_figures.py [ROOT]   (prints one line per problem; exit code 1 if any)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*benchmarks/results/[^)\s]+)\)")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _appears(number: str, text: str) -> bool:
    digits = number.lstrip("+-")
    return re.search(rf"(?<![\d.]){re.escape(digits)}(?![\d]|\.\d)", text) is not None


def check(root: Path) -> list[str]:
    problems = []
    docs = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    for doc in (d for d in docs if d.exists()):
        name = doc.relative_to(root)
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for label, target in LINK.findall(line):
                path = (doc.parent / target).resolve()
                if not path.is_file():
                    problems.append(f"{name}:{n}: {target} does not exist")
                    continue
                text = path.read_text()
                for number in NUMBER.findall(label):
                    if not _appears(number, text):
                        problems.append(f"{name}:{n}: {number} (in '{label}') is not in {target}")
            if doc.name == "benchmarks.md" and line.startswith("|") and not set(line) <= set("|- "):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells[-1] != "figure" and NUMBER.search(cells[-1]) and not LINK.search(cells[-1]):
                    problems.append(f"{name}:{n}: a figure without its results file: {cells[-1]}")
    return problems


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    problems = check(root)
    for p in problems:
        print(p)
    print(f"check_figures: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
