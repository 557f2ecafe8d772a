"""The fused CPU selective scan: numba kernels (forward and backward) behind the common signature.

numba compiles the kernels with its bundled LLVM, so no C compiler is needed on the user's
machine. Compiling takes a while, once: the machine code is cached under
:func:`algnet_cli.paths.kernel_cache_dir`, and later runs load it in well under a second. A
cache that cannot be read is cleared and rebuilt; a kernel that cannot be prepared at all makes
the dispatcher fall back to the chunked scan (see :mod:`.dispatch`).

Work is split over (batch x groups of 16 channels) tasks, run by a few threads; the kernels
release the GIL.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..errors import ScanBackendError
from ..paths import kernel_cache_dir
from .scan_ref import needs_grad

INSTALL_HINT = "the 'fused' CPU scan needs numba (pip install numba)"
_MODULE = f"{__package__}._numba_kernels"
_log = logging.getLogger("algnet_cli.scan")
_lock = threading.Lock()
_kernels = None
_failure: str | None = None
#: how long a process waits for another one's compile before compiling itself
COMPILE_WAIT_S = 300.0


#: why the fused scan is not used while NUMBA_DISABLE_JIT is set
JIT_DISABLED = ("NUMBA_DISABLE_JIT is set: numba would run the fused scan as plain Python (minutes for a "
                "small image); unset it to use the fused scan")  # fmt: skip


def jit_disabled() -> bool:
    """Whether NUMBA_DISABLE_JIT is set (numba would then run the kernels as plain Python)."""
    import os

    return os.environ.get("NUMBA_DISABLE_JIT", "").strip() not in ("", "0")


def available() -> bool:
    """True when numba is installed and compiles (the kernels themselves are compiled on first use)."""
    return importlib.util.find_spec("numba") is not None and _failure is None and not jit_disabled()


def unavailable_reason() -> str:
    if jit_disabled():
        return JIT_DISABLED
    return _failure or INSTALL_HINT


def cache_state() -> str:
    """'compiled' when this machine's cache holds the kernels, else 'not compiled yet' (no compiling)."""
    return "compiled" if _cached(kernel_cache_dir()) else "not compiled yet"


def _cached(folder: Path) -> bool:
    """Each kernel has a non-empty index and a non-empty compiled file in the cache (a cache of
    empty files, from a full disk, is not a compiled one)."""
    names = ("scan_forward", "scan_backward")

    def present(pattern: str) -> bool:
        return any(p.stat().st_size > 0 for p in folder.rglob(pattern))

    return all(present(f"*{name}-*.nbi") and present(f"*{name}-*.nbc") for name in names)


def kernels():
    """The compiled kernel module, compiling or loading it from the cache on first use.

    Raises ScanBackendError when numba is missing or the kernels cannot be built even from an
    empty cache.
    """
    global _kernels, _failure
    if _kernels is not None:
        return _kernels
    with _lock:
        if _kernels is not None:
            return _kernels
        if importlib.util.find_spec("numba") is None:
            raise ScanBackendError(INSTALL_HINT)
        folder = kernel_cache_dir()
        with _compiling(folder):
            if not _cached(folder):
                _log.warning("preparing the fused CPU kernels, once: under a minute (cached in %s)", folder)
            try:
                _kernels = _compile(folder)
            except Exception as first:  # a broken or stale cache: clear it and build afresh
                _log.warning("the kernel cache in %s could not be used (%s); rebuilding it", folder, first)
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    _kernels = _compile(folder)
                except Exception as second:
                    _failure = f"the fused CPU scan could not be prepared: {type(second).__name__}: {second}"
                    raise ScanBackendError(_failure) from second
        return _kernels


@contextlib.contextmanager
def _compiling(folder: Path):
    """Held while this process compiles or loads the kernels: processes that start together on a
    machine with no cache yet (a batch beside a cluster worker, several workers of one node) compile
    once, one after the other loading what the first wrote, instead of all compiling at once. The
    lock file sits beside the cache (a rebuild removes the cache folder). A cache where no lock file
    can be made is used without one."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder.with_name(folder.name + ".lock")), timeout=COMPILE_WAIT_S)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except (OSError, Timeout):
        held = False
    else:
        held = True
    try:
        yield
    finally:
        if held:
            lock.release()


def _compile(folder: Path):
    """Import the kernel module with numba's cache pointed at ``folder`` (it compiles on import)."""
    import numba

    sys.modules.pop(_MODULE, None)
    previous = numba.config.CACHE_DIR
    # numba's CPU target, set up on the first compile or cache load, probes for a BLAS by importing
    # scipy.linalg when scipy is installed: 0.3 to 0.4 s of every start-up. The kernels call no BLAS, so
    # the probe is told there is none (numba then sums np.convolve/np.correlate in a plain loop; np.dot
    # and np.linalg, which import scipy when they compile, are unaffected).
    probe = "scipy.linalg.cython_blas"
    blocked = probe not in sys.modules
    if blocked:
        sys.modules[probe] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        folder.mkdir(parents=True, exist_ok=True)
        numba.config.CACHE_DIR = str(folder)
        return importlib.import_module(_MODULE)
    finally:
        numba.config.CACHE_DIR = previous
        if blocked and sys.modules.get(probe, 0) is None:
            del sys.modules[probe]


_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def run_tasks(kernel, tasks: int, *args) -> None:
    """Run kernel(lo, hi, *args) over [0, tasks), split evenly over torch's thread count."""
    global _pool, _pool_size
    threads = max(1, min(torch.get_num_threads(), tasks))
    if threads == 1:
        kernel(0, tasks, *args)
        return
    with _lock:
        if _pool is None or _pool_size < threads:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="algnet-scan")
            _pool_size = threads
        pool = _pool
    bounds = [tasks * i // threads for i in range(threads + 1)]
    futures = [pool.submit(kernel, lo, hi, *args) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for f in futures:
        f.result()


def _seq(t: torch.Tensor) -> tuple:
    """A (batch, x, length) tensor as the kernels read it: (C-contiguous float32 array, offset, cf).

    Channels-first contiguous tensors pass as they are (cf=1). Transposed views of a (batch,
    length, width) buffer, column slices included, pass as that buffer with the slice's first
    column as offset (cf=0). Anything else is copied once into channels-first order.
    """
    t = t.detach()
    if t.dtype != torch.float32:
        t = t.float()
    b, x, length = t.shape
    if t.is_contiguous():
        return t.numpy(), 0, 1
    row = t.stride(2)
    if t.stride(1) == 1 and row >= x and (b == 1 or t.stride(0) == length * row):
        col = t.storage_offset() % row
        start = t.storage_offset() - col
        if col + x <= row and start + b * length * row <= t.untyped_storage().nbytes() // 4:
            base = torch.as_strided(t, (b, length, row), (length * row, row, 1), start)
            return base.numpy(), col, 0
    return t.contiguous().numpy(), 0, 1


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """(batch, length, x) <-> (batch, x, length) as a view, no copy."""
    return t.transpose(1, 2)


def vector(t: torch.Tensor):
    return t.detach().float().contiguous().numpy()


def _extras(u, D, z, delta_bias):
    """D, delta_bias (zeros when absent) and z as kernel arguments, with the has-z flag."""
    zeros = u.new_zeros(u.shape[1], dtype=torch.float32)
    D_ = zeros if D is None else D
    bias = zeros if delta_bias is None else delta_bias
    z_ = _seq(z) if z is not None else (torch.zeros(1, 1, 1).numpy(), 0, 1)
    return vector(D_), z_, vector(bias), int(z is not None)


def _inputs(u, delta, A, B, C, D, z, delta_bias, softplus: bool) -> tuple:
    """The kernels' arguments from ``u`` to ``has_z`` (see _numba_kernels.scan_backward)."""
    D_, z_, bias, has_z = _extras(u, D, z, delta_bias)
    return ((*_seq(u), *_seq(delta), *z_, *_seq(B), *_seq(C)), vector(A), D_, bias, int(softplus), has_z)


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus: bool, store: bool, delta_proj=None):
    k = kernels()
    b, d, length = u.shape
    y = torch.empty(b, length, d, dtype=torch.float32)
    tiles = -(-length // k.TILE)
    states = torch.empty(b, tiles, d, A.shape[1]) if store else torch.empty(1, 1, 1, 1)
    groups = -(-d // k.LANES)
    seqs, A_, D_, bias, softplus_, has_z = _inputs(u, delta, A, B, C, D, z, delta_bias, softplus)
    proj = torch.zeros(d, 0) if delta_proj is None else delta_proj.detach().float().contiguous()
    args = (seqs, A_, D_, bias, proj.numpy(), softplus_, has_z)
    run_tasks(k.scan_forward, b * groups, *args, y.numpy(), states.numpy(), int(store))
    return y, states


def selective_scan_fused(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    delta_proj: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same contract as :func:`~algnet_cli.ops.scan_ref.selective_scan_reference`; CPU tensors only.

    u, delta, z: (batch, dim, length); A: (dim, state); B, C: (batch, state, length); D,
    delta_bias: (dim,). Inputs may have any strides: transposed views of (batch, length, x)
    tensors, as the Mamba block's projections produce, are read in place. Returns ``u.dtype``,
    as a (batch, dim, length) view of a (batch, length, dim) tensor, so that transposing it back
    costs nothing. Computed in float32.

    delta_proj: (dim, rank), mamba's dt_proj weight; then delta is (batch, rank, length) and the
    step sizes are delta_proj @ delta (+ delta_bias), projected inside the kernel without gradients
    (no (batch, length, dim) tensor of them is made), in torch first with.
    """
    if u.device.type != "cpu":
        raise ScanBackendError(f"the 'fused' scan runs on the CPU, not on {u.device.type}")
    if needs_grad(u, delta, A, B, C, D, z, delta_bias, delta_proj):
        if delta_proj is not None:
            delta = project_delta(delta, delta_proj)
        y = _FusedScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))
    else:
        y, _ = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, store=False, delta_proj=delta_proj)
    return _channels_last(y).to(u.dtype)


def project_delta(delta: torch.Tensor, delta_proj: torch.Tensor) -> torch.Tensor:
    """(batch, rank, length) low-rank step sizes through dt_proj's (dim, rank) weight -> (batch, dim,
    length), as a view of a (batch, length, dim) tensor (the layout the projection gives)."""
    return torch.nn.functional.linear(delta.transpose(1, 2), delta_proj).transpose(1, 2)


def causal_conv1d_silu_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu(depthwise causal conv1d) over (batch, length, dim) CPU tensors, channels last; no autograd.

    x may be a column slice of a wider (batch, length, width) buffer (read in place); weight:
    (dim, 1, k) as ``nn.Conv1d`` keeps it; bias: (dim,). Returns a contiguous (batch, length, dim)
    float32 tensor.
    """
    k = kernels()
    b, length, d = x.shape
    base, off, cf = _seq(x.transpose(1, 2))
    if cf:  # channels first in memory: hand the kernel its channels-last copy
        base, off = x.detach().float().contiguous().numpy(), 0
    out = torch.empty(b, length, d, dtype=torch.float32)
    steps = 4096
    tasks = b * -(-length // steps)
    run_tasks(k.causal_conv1d_silu, tasks, steps, base, off, vector(weight).reshape(d, -1), vector(bias), out.numpy())
    return out


class _FusedScan(torch.autograd.Function):
    """Forward keeps the state entering every tile; backward recomputes each tile from it."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus: bool):
        y, states = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, store=True)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        ctx.softplus = softplus
        return y

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        k = kernels()
        b, d, length = u.shape
        n = A.shape[1]
        groups = -(-d // k.LANES)
        gu, gdelta, gz = (torch.zeros(b, length, d) for _ in range(3))
        gB, gC = (torch.zeros(b, groups, length, n) for _ in range(2))
        gA = torch.zeros(b, d, n)
        gD, gbias = torch.zeros(b, d), torch.zeros(b, d)
        run_tasks(
            k.scan_backward,
            b * groups,
            *_inputs(u, delta, A, B, C, D, z, delta_bias, ctx.softplus),
            states.numpy(),
            gy.detach().float().contiguous().numpy(),
            *(t.numpy() for t in (gu, gdelta, gz, gB, gC, gA, gD, gbias)),
        )
        need = ctx.needs_input_grad
        return (
            _channels_last(gu).to(u.dtype) if need[0] else None,
            _channels_last(gdelta).to(delta.dtype) if need[1] else None,
            gA.sum(0).to(A.dtype) if need[2] else None,
            _channels_last(gB.sum(1)).to(B.dtype) if need[3] else None,
            _channels_last(gC.sum(1)).to(C.dtype) if need[4] else None,
            gD.sum(0).to(D.dtype) if D is not None and need[5] else None,
            _channels_last(gz).to(z.dtype) if z is not None and need[6] else None,
            gbias.sum(0).to(delta_bias.dtype) if delta_bias is not None and need[7] else None,
            None,
        )
