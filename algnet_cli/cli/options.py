"""Reusable option aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]

CacheDir = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        envvar="ALGNET_CACHE_DIR",
        help="Where downloaded models live (default: the user cache folder).",
    ),
]
Offline = Annotated[
    bool, typer.Option("--offline", help="Use only the cache; make no network request (also HF_HUB_OFFLINE=1).")
]


def check_outputs(reports: list[Path], compare: Path | None) -> None:
    """Every report's folder (a report: any one file a command will write) and the --compare folder
    can be written: a usage error naming the path otherwise, before any work (missing folders are
    made, as the outputs would make them). The paths themselves were claimed first, from the one
    owner of output paths (:mod:`algnet_cli.outputs`), which refuses a file or folder in the way."""
    from ..errors import UsageError
    from ..fileio import probe_writable

    folders = [(r.parent, r) for r in reports] + ([(compare, compare)] if compare is not None else [])
    for folder, named in folders:
        try:
            probe_writable(folder)
        except OSError as e:
            raise UsageError(f"{named}: cannot write in {folder} ({e.strerror or e})") from None
