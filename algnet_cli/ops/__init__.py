"""Selective-scan kernels: a sequential reference, a blocked and a fused CPU path, GPU adapters, one dispatcher."""

from .dispatch import (
    BACKENDS,
    available_backends,
    causal_conv1d_silu,
    default_backend,
    prepare,
    resolve_backend,
    selective_scan,
)
from .scan_chunked import selective_scan_chunked
from .scan_ref import selective_scan_reference

__all__ = [
    "BACKENDS",
    "available_backends",
    "causal_conv1d_silu",
    "default_backend",
    "prepare",
    "resolve_backend",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_reference",
]
