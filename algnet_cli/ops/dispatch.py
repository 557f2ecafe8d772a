"""One entry point for the selective scan; picks a backend per call.

Backends (same signature): ``reference`` (sequential, the oracle), ``chunked`` (blocked pure
PyTorch, any device), ``fused`` (numba CPU kernels), ``triton`` (fused GPU kernel), ``mamba``
(mamba-ssm's CUDA kernel). ``auto`` takes, for CUDA tensors, mamba if importable, else triton if
importable, else chunked; on the CPU, fused when numba imports, else chunked; and chunked when the
fused kernel cannot be prepared (a note says why). The environment variable ``ALGNET_SCAN`` sets
the default.

Every backend is differentiable (triton through its own backward kernel). A backend listed in
``FORWARD_ONLY`` would be skipped by ``auto`` when autograd needs the scan's gradients, and asking
for it explicitly then is an error rather than a silently detached output.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from ..errors import ScanBackendError
from . import scan_fused, scan_mamba, scan_triton
from .scan_chunked import selective_scan_chunked
from .scan_ref import needs_grad, selective_scan_reference

BACKENDS = ("auto", "reference", "chunked", "fused", "triton", "mamba")
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
        "fused": device_type == "cpu" and scan_fused.available(),
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
        for candidate in ("mamba", "triton", "fused", "chunked"):
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
        if name == "fused":
            raise ScanBackendError(
                scan_fused.unavailable_reason()
                if device_type == "cpu"
                else f"the 'fused' scan runs on the CPU, not on {device_type}"
            )
        raise ScanBackendError(scan_triton.unavailable_reason(device_type))
    return name


def prepare(name: str | None, device_type: str, needs_grad: bool = False) -> str:
    """Resolve a backend and make it ready; returns the backend that will run.

    For the fused CPU scan this compiles (or loads from the cache) its kernels, once. Asked for by
    name, a kernel that cannot be prepared is an error; under ``auto`` it falls back to chunked, with
    a note the first time. Loading a model calls this, so the one-time compile is announced before
    any progress display; every scan call calls it too, which costs nothing once the kernels are in.
    """
    requested = (name or default_backend()).lower()
    concrete = resolve_backend(requested, device_type, needs_grad)
    if concrete != "fused":
        return concrete
    try:
        scan_fused.kernels()
    except ScanBackendError as e:
        if requested != "auto":
            raise
        if ("fallback", "cpu") not in _announced:
            _announced.add(("fallback", "cpu"))
            _log.warning("%s; using the chunked scan instead", e)
        return "chunked"
    return "fused"


_FUNCS = {
    "reference": selective_scan_reference,
    "chunked": selective_scan_chunked,
    "fused": scan_fused.selective_scan_fused,
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
    delta_proj: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Selective scan with the chosen backend (shapes: see ``selective_scan_reference``).

    delta_proj: (dim, rank), mamba's dt_proj weight; then delta is (batch, rank, length), projected
    to (batch, dim, length) by it: inside the fused CPU kernel when no gradients are wanted, in
    torch before the scan otherwise.
    """
    grad = needs_grad(u, delta, A, B, C, D, z, delta_bias, delta_proj)
    name = prepare(backend, u.device.type, grad)
    key = (name, u.device.type)
    if key not in _announced:
        _announced.add(key)
        _log.info("selective scan backend: %s on %s", name, u.device.type)
    if delta_proj is not None:
        if name == "fused" and not grad:
            return scan_fused.selective_scan_fused(u, delta, A, B, C, D, z, delta_bias, delta_softplus, delta_proj)
        delta = scan_fused.project_delta(delta, delta_proj)
    return _FUNCS[name](u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def causal_conv1d_silu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """silu of the Mamba block's depthwise causal conv1d, channels last.

    x: (batch, length, dim), any strides (a column slice of the input projection is read in
    place by the fused kernel); weight: (dim, 1, k); bias: (dim,). Returns (batch, length, dim)
    in x's dtype. With the fused scan, and no gradients wanted, a numba kernel computes it; else
    ``F.conv1d`` with padding k - 1, cut to the length (mamba-ssm's definition).
    """
    if x.device.type == "cpu" and not needs_grad(x, weight, bias) and prepare(backend, "cpu") == "fused":
        return scan_fused.causal_conv1d_silu_fused(x, weight, bias).to(x.dtype)
    length, dim = x.shape[1], x.shape[2]
    y = F.conv1d(x.transpose(1, 2), weight, bias, padding=weight.shape[-1] - 1, groups=dim)[..., :length]
    return F.silu(y).transpose(1, 2)
