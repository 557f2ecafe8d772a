"""Where algnet-cli keeps its files (standard library and platformdirs only).

One root for everything cached: models under it (see :mod:`algnet_cli.hub`), compiled CPU kernels
in ``kernels/``. ``ALGNET_CACHE_DIR`` moves the root; ``ALGNET_KERNEL_CACHE`` moves the kernels alone.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ALGNET_CACHE_DIR"
KERNEL_CACHE_ENV = "ALGNET_KERNEL_CACHE"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache folder: ``override``, else ``$ALGNET_CACHE_DIR``, else the user cache folder."""
    if override:
        return Path(override)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("algnet-cli"))


def kernel_cache_dir() -> Path:
    """Where compiled CPU kernels are kept: ``$ALGNET_KERNEL_CACHE``, else ``<cache root>/kernels``."""
    if os.environ.get(KERNEL_CACHE_ENV):
        return Path(os.environ[KERNEL_CACHE_ENV])
    return cache_root() / "kernels"
