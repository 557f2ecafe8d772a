"""algnet-cli: ALGNet image deblurring from the shell and from Python.

Importing this package is cheap: torch is imported only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .model import ALGNet

__all__ = ["Deblurrer", "__version__", "load_model", "restore"]


def load_model(
    source, *, device="cpu", tlc: bool | int = False, scan: str = "auto", cache_dir=None, offline: bool | None = None
) -> ALGNet:
    """Load an ALGNet and return it in eval mode.

    source: a registry name, ``hf://owner/repo[@revision]/file.safetensors`` (downloaded into the
    cache, sha256-checked), or a path to a ``.safetensors`` or ``.pth`` checkpoint (official layouts
    and trainer wrappers accepted; the configuration is read off the tensors). cache_dir/offline:
    where Hub downloads live, and whether to use only the cache (default: ``HF_HUB_OFFLINE``).
    device: where the model goes.
    tlc: the test-time local converter; True for the official training size 256, an int for
    another size, False for plain global pooling. scan: the selective-scan backend ('auto',
    'fused', 'chunked', 'reference', 'triton', 'mamba'); the fused CPU kernel is compiled here on
    first use (once per machine, then cached).
    """
    import torch

    from .hub import resolve
    from .model.checkpoint import load_checkpoint
    from .ops import prepare

    device = torch.device(device)
    prepare(scan, device.type)  # fail now, with a clear message, if it cannot run there
    if device.type == "cpu":
        from .cpu import keep_freed_memory

        keep_freed_memory()
    model = load_checkpoint(resolve(source, cache=cache_dir, offline=offline))
    model.set_scan_backend(None if scan == "auto" else scan)
    model.set_tlc((256 if tlc is True else int(tlc)) if tlc else None)
    return model.to(device).eval()


def restore(model, image):
    """Restore (B, C, H, W) images in [0, 1] with ``model``; returns the full-scale result at (H, W)."""
    import torch

    from .model import restore as _restore

    with torch.inference_mode():
        return _restore(model, image)


def __getattr__(name):
    if name == "Deblurrer":  # imported on first use: it needs torch
        from .api import Deblurrer

        return Deblurrer
    raise AttributeError(name)
