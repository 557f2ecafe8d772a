"""One entry point for the selective scan; picks a backend per call.

Backends (same signature): ``reference`` (sequential, the oracle), ``chunked`` (blocked pure
PyTorch, any device), ``triton`` (fused GPU kernel), ``mamba`` (mamba-ssm's CUDA kernel).
``auto`` takes, for CUDA tensors, mamba if importable, else triton if importable, else chunked;
for everything else, chunked. The environment variable ``ALGNET_SCAN`` sets the default.

Every backend is differentiable (triton through its own backward kernel). A backend listed in
``FORWARD_ONLY`` would be skipped by ``auto`` when autograd needs the scan's gradients, and asking
for it explicitly then is an error rather than a silently detached output.
"""

from __future__ import annotations

import logging
import os

import torch

from ..errors import ScanBackendError
from . import scan_mamba, scan_triton
from .scan_chunked import selective_scan_chunked
from .scan_ref import needs_grad, selective_scan_reference

BACKENDS = ("auto", "reference", "chunked", "triton", "mamba")
ENV_VAR = "ALGNET_SCAN"

_log = logging.getLogger("algnet_cli.scan")
_announced: set[tuple[str, str]] = set()


def default_backend() -> str:
    """The backend named by ``ALGNET_SCAN``, or ``auto``."""
    name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ScanBackendError(f"{ENV_VAR}={name!r} is not a scan backend; choose one of {', '.join(BACKENDS)}")
    return name


def available_backends(device_type: str) -> dict[str, bool]:
    """Which concrete backends can run on a device type ('cpu', 'cuda', ...)."""
    cuda = device_type == "cuda"
    return {
        "reference": True,
        "chunked": True,
        "triton": cuda and scan_triton.available(),
        "mamba": cuda and scan_mamba.available(),
    }


FORWARD_ONLY: frozenset[str] = frozenset()


def resolve_backend(name: str | None, device_type: str, needs_grad: bool = False) -> str:
    """Turn a requested backend (None = environment default) into a concrete one for a device type.

    ``needs_grad``: the call must be differentiable, which rules out the forward-only kernels.
    """
    name = (name or default_backend()).lower()
    if name not in BACKENDS:
        raise ScanBackendError(f"unknown scan backend {name!r}; choose one of {', '.join(BACKENDS)}")
    avail = available_backends(device_type)
    if name == "auto":
        for candidate in ("mamba", "triton", "chunked"):
            if avail[candidate] and not (needs_grad and candidate in FORWARD_ONLY):
                return candidate
    if needs_grad and name in FORWARD_ONLY:
        raise ScanBackendError(
            f"the {name} scan is forward-only and cannot be trained through; use 'chunked' or 'mamba' "
            f"(or 'auto') for training"
        )
    if not avail[name]:
        if name == "mamba":
            raise ScanBackendError(
                scan_mamba.INSTALL_HINT if device_type == "cuda" else "the 'mamba' scan needs a CUDA device"
            )
        raise ScanBackendError(scan_triton.unavailable_reason(device_type))
    return name


_FUNCS = {
    "reference": selective_scan_reference,
    "chunked": selective_scan_chunked,
    "triton": scan_triton.selective_scan_triton,
    "mamba": scan_mamba.selective_scan_mamba,
}


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Selective scan with the chosen backend (shapes: see ``selective_scan_reference``)."""
    name = resolve_backend(backend, u.device.type, needs_grad(u, delta, A, B, C, D, z, delta_bias))
    key = (name, u.device.type)
    if key not in _announced:
        _announced.add(key)
        _log.info("selective scan backend: %s on %s", name, u.device.type)
    return _FUNCS[name](u, delta, A, B, C, D, z, delta_bias, delta_softplus)
