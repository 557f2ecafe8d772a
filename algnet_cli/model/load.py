"""Loading a model for inference: resolve the source, build the network, and describe it as it will run."""

from __future__ import annotations

from pathlib import Path

import torch

from .algnet import ALGNet
from .config import PRECISIONS, ModelDescriptor


def describe(
    model: ALGNet, device: torch.device, source: str = "module", path: str | Path | None = None
) -> ModelDescriptor:
    """The descriptor of ``model`` on ``device`` (its scan backend resolved for that device type)."""
    from ..fileio import sha256_file
    from ..ops import resolve_backend

    return ModelDescriptor(
        config=model.config,
        source=str(source),
        path=None if path is None else str(path),
        sha256=None if path is None else sha256_file(path),
        size_multiple=model.config.multiple,
        precisions=PRECISIONS if device.type == "cuda" else ("fp32", "bf16"),
        tlc_size=model.tlc_train_size,
        scan_backend=resolve_backend(model.scan_backend, device.type),
        device=str(device),
    )


def load(
    source,
    *,
    device: str | torch.device = "cpu",
    tlc: bool | int = False,
    scan: str = "auto",
    cache_dir=None,
    offline: bool | None = None,
    quiet: bool = False,
) -> tuple[ALGNet, ModelDescriptor]:
    """Resolve ``source``, build the network on ``device`` in eval mode, and describe it.

    The scan backend is checked (and the fused CPU kernel compiled, once per machine) against the
    device the model will run on, before any weights are read. See :func:`load_model`.
    """
    from ..hub import resolve
    from ..ops import prepare
    from .checkpoint import load_checkpoint

    device = torch.device(device)
    prepare(scan, device.type)  # fail now, with a clear message, if it cannot run there
    path = resolve(source, cache=cache_dir, offline=offline, quiet=quiet)
    model = load_checkpoint(path)
    model.set_scan_backend(None if scan == "auto" else scan)
    model.set_tlc((256 if tlc is True else int(tlc)) if tlc else None)
    model = model.to(device).eval()
    return model, describe(model, device, str(source), path)


def load_model(
    source, *, device="cpu", tlc: bool | int = False, scan: str = "auto", cache_dir=None, offline: bool | None = None
) -> ALGNet:
    """Load an ALGNet and return it in eval mode, its :class:`ModelDescriptor` as ``.descriptor``.

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
    model, descriptor = load(source, device=device, tlc=tlc, scan=scan, cache_dir=cache_dir, offline=offline)
    model.descriptor = descriptor
    return model
