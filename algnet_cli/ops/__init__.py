"""Selective-scan kernels: a sequential reference, a blocked CPU path, GPU adapters, one dispatcher."""

from .dispatch import BACKENDS, available_backends, default_backend, resolve_backend, selective_scan
from .scan_chunked import selective_scan_chunked
from .scan_ref import selective_scan_reference

__all__ = [
    "BACKENDS",
    "available_backends",
    "default_backend",
    "resolve_backend",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_reference",
]
