"""Reusable option aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]

CacheDir = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir", help="Where downloaded models live (default: ALGNET_CACHE_DIR, else the user cache folder)."
    ),
]
Offline = Annotated[
    bool, typer.Option("--offline", help="Use only the cache; make no network request (also HF_HUB_OFFLINE=1).")
]
