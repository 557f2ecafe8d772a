"""algnet-cli: ALGNet image deblurring from the shell and from Python.

The public API (importing this module is cheap: torch is imported only when one of these names is
first used):

- ``Deblurrer(model="default", *, device="auto", precision="auto", tlc=True, tile=None, ...)``:
  load a model once; ``deblur(array)`` and ``deblur_many(arrays)`` take uint8, uint16 or float (0..1)
  arrays, H x W or H x W x C, and give the same dtype and shape back; ``deblur_file(src, dst)`` does
  what ``algnet deblur`` does to one file.
- ``restore(model, images)``: (B, C, H, W) tensors in [0, 1] through a loaded ALGNet, full scale out.
- ``load_model(source, *, device="cpu", ...)``: an ALGNet module and its ``ModelDescriptor``, from a
  registry name, an ``hf://`` reference or a checkpoint file.
- ``ModelDescriptor``: what was loaded (architecture, checkpoint, sha256, scan backend).
- ``__version__``.

See ``docs/python.md`` for examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from .api import Deblurrer
    from .model.algnet import restore
    from .model.load import ModelDescriptor, load_model

__all__ = ["Deblurrer", "ModelDescriptor", "__version__", "load_model", "restore"]

_EXPORTS = {
    "Deblurrer": "algnet_cli.api",
    "load_model": "algnet_cli.model.load",
    "ModelDescriptor": "algnet_cli.model.load",
    "restore": "algnet_cli.model.algnet",
}


def __dir__():
    return sorted(set(globals()) | set(__all__))


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
