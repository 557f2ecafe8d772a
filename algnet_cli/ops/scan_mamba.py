"""Adapter for mamba-ssm's compiled CUDA selective scan (optional)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

INSTALL_HINT = (
    "mamba-ssm's compiled kernel is not importable; install it with "
    "`MAMBA_KEEP_CUDA_BUILD=TRUE pip install mamba-ssm --no-build-isolation` on a machine with "
    "a CUDA build of torch and nvcc, or use the 'triton' or 'chunked' scan"
)


@functools.lru_cache(maxsize=1)
def _kernel() -> Callable | None:
    try:
        import selective_scan_cuda  # noqa: F401  (the compiled extension itself)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # any import failure means: not usable here
        return None
    return selective_scan_fn


def available() -> bool:
    """True when mamba-ssm and its compiled ``selective_scan_cuda`` import."""
    return _kernel() is not None


def selective_scan_mamba(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Same contract as :func:`~algnet_cli.ops.scan_ref.selective_scan_reference`; CUDA tensors only."""
    from ..errors import ScanBackendError

    fn = _kernel()
    if fn is None:
        raise ScanBackendError(INSTALL_HINT)
    if not u.is_cuda:
        raise ScanBackendError("the 'mamba' scan runs on CUDA tensors only")
    return fn(
        u.contiguous(),
        delta.contiguous(),
        A.contiguous(),
        B.contiguous(),
        C.contiguous(),
        D,
        z.contiguous() if z is not None else None,
        delta_bias,
        delta_softplus,
    )
