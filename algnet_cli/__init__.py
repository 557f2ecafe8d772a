"""algnet-cli: ALGNet image deblurring from the shell and from Python.

This module only re-exports the public API. Importing it is cheap: torch is imported only when one
of these names is first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Deblurrer", "ModelDescriptor", "__version__", "load_model", "restore"]

_EXPORTS = {
    "Deblurrer": "algnet_cli.api",
    "load_model": "algnet_cli.model.load",
    "ModelDescriptor": "algnet_cli.model.load",
    "restore": "algnet_cli.api",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
