"""The fused CPU scan (numba) against the float64 loop, its gradients, layouts, the dispatcher and its cache."""

import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.scan import GRID, assert_gradients_match_reference, make_inputs, naive_scan, rel_err

from algnet_cli.errors import ScanBackendError
from algnet_cli.ops import dispatch, scan_fused

pytest.importorskip("numba")

FUSED_GRID = GRID + [
    # b, d, n, length, delta scale: d not a multiple of the 16 lanes, n of 1, 16 and 32, one step,
    # several tiles of 256 steps with a ragged last one
    (2, 20, 16, 600, 1.0),
    (1, 33, 1, 513, 1.0),
    (1, 17, 32, 300, 1.0),
    (3, 16, 16, 1, 1.0),
    (1, 5, 7, 1100, 1.0),
]


@pytest.mark.parametrize("shape", FUSED_GRID)
@pytest.mark.parametrize("softplus", [True, False])
def test_fused_forward_matches_naive_loop(shape, softplus):
    b, d, n, length, scale = shape
    args = make_inputs(b, d, n, length, scale, seed=length + d)
    if not softplus:
        u, delta, A, B, C, D, z, bias = args
        args = (u, delta.abs(), A, B, C, D, z, bias.abs())
    got = scan_fused.selective_scan_fused(*args, softplus)
    assert got.dtype == torch.float32 and got.shape == (b, d, length)
    assert rel_err(got, naive_scan(*args, softplus)) < 1e-5


@pytest.mark.parametrize("shift", [8.0, -30.0])
def test_fused_forward_with_shifted_delta(shift):
    """delta + 8: every decay is tiny and cut to 0; delta - 30: steps below 1e-20 are cut to 0."""
    u, delta, A, B, C, D, z, bias = make_inputs(2, 20, 16, 400, seed=3)
    args = (u, delta + shift, A, B, C, D, z, bias)
    got = scan_fused.selective_scan_fused(*args, True)
    assert torch.isfinite(got).all()
    assert rel_err(got, naive_scan(*args, True)) < 1e-5


@pytest.mark.parametrize("b,d,rank,cf", [(1, 32, 1, False), (2, 20, 3, False), (1, 17, 2, True)])
def test_the_step_sizes_projected_in_the_kernel_equal_those_projected_before(b, d, rank, cf):
    """delta_proj: the kernel projects (batch, rank, length) step sizes itself; the float64 loop gets
    them projected in float64 beforehand."""
    u, _, A, B, C, D, z, bias = make_inputs(b, d, 16, 700, seed=rank)
    g = torch.Generator().manual_seed(9)
    low = torch.randn(b, 700, rank, generator=g)  # the dt columns of x_proj's output
    low = low.transpose(1, 2).contiguous() if cf else low.transpose(1, 2)
    weight = torch.randn(d, rank, generator=g) / rank**0.5
    delta = torch.einsum("dr,brl->bdl", weight.double(), low.double())
    expected = naive_scan(u, delta, A, B, C, D, z, bias, True)
    with torch.no_grad():
        got = dispatch.selective_scan(u, low, A, B, C, D, z, bias, True, delta_proj=weight, backend="fused")
    assert rel_err(got, expected) < 1e-5
    # with gradients wanted it is projected in torch first, and the gradient reaches the weight
    w = weight.clone().requires_grad_(True)
    out = dispatch.selective_scan(u, low, A, B, C, D, z, bias, True, delta_proj=w, backend="fused")
    assert rel_err(out.detach(), expected) < 1e-5
    out.square().sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("extras", [True, False])
def test_fused_without_optional_inputs_and_in_bf16(extras):
    args = make_inputs(2, 4, 8, 100, extras=extras)
    expected = naive_scan(*args, True)
    assert rel_err(scan_fused.selective_scan_fused(*args, True), expected) < 1e-5
    half = scan_fused.selective_scan_fused(args[0].bfloat16(), *args[1:], True)
    assert half.dtype == torch.bfloat16
    assert rel_err(half.float(), expected) < 2e-2


def test_fused_reads_projection_layouts_in_place():
    """Transposed views and column slices of (batch, length, width) buffers, as the Mamba block passes them."""
    b, d, n, length = 2, 20, 8, 300
    g = torch.Generator().manual_seed(4)
    xz = torch.randn(b, length, 2 * d, generator=g)
    x_dbl = torch.randn(b, length, 3 + 2 * n, generator=g)
    delta = torch.randn(b, length, d, generator=g)
    A = -torch.exp(torch.rand(d, n, generator=g) * 3)
    D, bias = torch.randn(d, generator=g), torch.randn(d, generator=g)
    views = dict(
        u=xz[..., :d].transpose(1, 2),
        delta=delta.transpose(1, 2),
        B=x_dbl[..., 3 : 3 + n].transpose(1, 2),
        C=x_dbl[..., 3 + n :].transpose(1, 2),
        z=xz[..., d:].transpose(1, 2),
    )
    assert scan_fused._seq(views["z"])[1:] == (d, 0)  # read in place at column offset d, channels last
    got = scan_fused.selective_scan_fused(
        views["u"], views["delta"], A, views["B"], views["C"], D, views["z"], bias, True
    )
    dense = {k: v.contiguous() for k, v in views.items()}
    expected = naive_scan(dense["u"], dense["delta"], A, dense["B"], dense["C"], D, dense["z"], bias, True)
    assert rel_err(got, expected) < 1e-5


FUSED_GRAD_GRID = [
    # b, d, n, length, delta scale, extras: one step; ragged channel groups; several tiles; underflow
    (1, 1, 1, 1, 1.0, True),
    (2, 3, 4, 75, 1.0, True),
    (1, 20, 5, 300, 1.0, False),
    (2, 17, 16, 530, 1.0, True),
    (1, 3, 4, 90, 30.0, True),
]


@pytest.mark.parametrize("b,d,n,length,scale,extras", FUSED_GRAD_GRID)
def test_fused_gradients_equal_the_reference(b, d, n, length, scale, extras):
    args = list(make_inputs(b, d, n, length, delta_scale=scale, seed=13, extras=extras))
    assert_gradients_match_reference(lambda *leaves: scan_fused.selective_scan_fused(*leaves, True), args, True)


def test_fused_gradients_without_softplus():
    args = list(make_inputs(1, 18, 6, 280, seed=2))
    args[1], args[7] = args[1].abs(), args[7].abs()
    assert_gradients_match_reference(lambda *leaves: scan_fused.selective_scan_fused(*leaves, False), args, False)


def test_fused_causal_conv_matches_torch():
    g = torch.Generator().manual_seed(0)
    xz = torch.randn(2, 5000, 40, generator=g)
    for width in (4, 3):
        w, bias = torch.randn(20, 1, width, generator=g), torch.randn(20, generator=g)
        got = scan_fused.causal_conv1d_silu_fused(xz[..., 20:], w, bias)
        ref = F.silu(F.conv1d(xz[..., 20:].transpose(1, 2), w, bias, padding=width - 1, groups=20)[..., :5000])
        assert (got - ref.transpose(1, 2)).abs().max() < 1e-5


def test_mamba_block_is_the_same_with_fused_and_chunked():
    from algnet_cli.model.mamba import Mamba

    torch.manual_seed(0)
    block = Mamba(24, d_state=16).eval()
    x = torch.randn(2, 700, 24)
    with torch.inference_mode():
        block.scan_backend = "chunked"
        expected = block(x)
        block.scan_backend = "fused"
        got = block(x)
    assert (got - expected).abs().max() / expected.abs().max() < 1e-5


def test_auto_picks_fused_on_the_cpu_and_chunked_without_numba(monkeypatch):
    assert dispatch.resolve_backend("auto", "cpu") == "fused"
    assert dispatch.resolve_backend("auto", "cpu", needs_grad=True) == "fused"
    assert dispatch.resolve_backend("chunked", "cpu") == "chunked"  # still selectable
    monkeypatch.setattr(scan_fused.importlib.util, "find_spec", lambda name: None)  # numba absent
    assert not scan_fused.available()
    assert dispatch.resolve_backend("auto", "cpu") == "chunked"
    with pytest.raises(ScanBackendError, match="numba"):
        dispatch.resolve_backend("fused", "cpu")
    with pytest.raises(ScanBackendError, match="CPU"):
        dispatch.resolve_backend("fused", "cuda")


def test_a_kernel_that_cannot_be_built_falls_back_with_a_note(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(scan_fused, "_kernels", None)
    monkeypatch.setattr(scan_fused, "_failure", None)
    monkeypatch.setattr(dispatch, "_announced", set())
    monkeypatch.setenv("ALGNET_KERNEL_CACHE", str(tmp_path))

    def broken(folder):
        raise OSError("no space left on device")

    monkeypatch.setattr(scan_fused, "_compile", broken)
    args = make_inputs(1, 3, 4, 50, seed=1)
    with caplog.at_level(logging.WARNING, logger="algnet_cli.scan"):
        out = dispatch.selective_scan(*args, delta_softplus=True, backend="auto")
    assert rel_err(out, naive_scan(*args, True)) < 1e-5  # the chunked scan ran
    assert "could not be prepared" in caplog.text and "chunked" in caplog.text
    assert dispatch.resolve_backend("auto", "cpu") == "chunked"
    with pytest.raises(ScanBackendError, match="could not be prepared"):
        dispatch.prepare("fused", "cpu")


def test_a_corrupt_kernel_cache_is_rebuilt(monkeypatch, tmp_path, caplog):
    """Index files full of junk: the cache is cleared, the kernels compiled afresh and right. (The kernel
    module is a small stand-in with the same cached-kernel names: this is about the cache, and the real
    kernels take most of a minute to compile.)"""
    import numpy as np

    monkeypatch.setattr(scan_fused, "_MODULE", "helpers.tiny_kernels")
    monkeypatch.setenv("ALGNET_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(scan_fused, "_kernels", None)
    assert scan_fused.cache_state() == "not compiled yet"
    scan_fused.kernels()
    assert scan_fused.cache_state() == "compiled"
    indexes = list((tmp_path / "cache").rglob("*.nbi"))
    assert len(indexes) == 2
    for index in indexes:
        index.write_bytes(b"\x80\x04not a pickle at all")
    monkeypatch.setattr(scan_fused, "_kernels", None)
    with caplog.at_level(logging.WARNING, logger="algnet_cli.scan"):
        rebuilt = scan_fused.kernels()
    assert any("could not be used" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert scan_fused.cache_state() == "compiled"
    assert all(p.read_bytes()[:4] != b"\x80\x04no" for p in (tmp_path / "cache").rglob("*.nbi"))
    x, out = np.arange(1, 5, dtype=np.float32), np.zeros(4, np.float32)
    rebuilt.scan_forward(x, out)
    assert out.tolist() == [1, 3, 6, 10]
    monkeypatch.delitem(sys.modules, "helpers.tiny_kernels", raising=False)


def test_an_empty_cache_says_it_must_compile(monkeypatch, tmp_path):
    monkeypatch.setenv("ALGNET_KERNEL_CACHE", str(tmp_path / "none"))
    assert scan_fused.cache_state() == "not compiled yet"


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator only")
def test_cpu_allocator_setting_is_made_once_and_can_be_turned_off():
    import subprocess

    code = "from algnet_cli.cpu import keep_freed_memory as k; print(k(), k())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    env = dict(__import__("os").environ, ALGNET_MALLOC_TUNING="0")
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert on == ["True", "True"] and off.stdout.split() == ["False", "False"]


def test_loading_the_kernels_does_not_import_scipy_linalg_and_leaves_numba_whole():
    """numba's BLAS probe imports scipy.linalg (a third of a second of every start-up); the kernels need
    no BLAS, so loading them skips it. Code compiled afterwards that does need BLAS still gets it."""
    import subprocess

    pytest.importorskip("scipy")
    code = (
        "import sys, numpy as np, numba\n"
        "from algnet_cli.ops import scan_fused\n"
        "scan_fused.kernels()\n"
        "assert 'scipy.linalg' not in sys.modules, 'scipy.linalg imported'\n"
        "assert sys.modules.get('scipy.linalg.cython_blas', 0) is not None\n"
        "f = numba.njit(lambda a, b: np.dot(a, b))\n"
        "assert f(np.ones((3, 2)), np.ones((2, 4))).sum() == 24.0\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_processes_that_start_together_compile_the_kernels_once(tmp_path):
    """Two processes on a machine with no kernel cache yet, released at the same moment: one compiles,
    the other waits for it and loads what it wrote (it says nothing of compiling). (The small stand-in
    kernel module, as above.)"""
    import os
    import subprocess

    tests = Path(__file__).resolve().parent.parent
    gate = tmp_path / "gate"
    gate.mkdir()
    code = (
        "import logging, os, sys, time\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "import numba\n"
        "from algnet_cli.ops import scan_fused\n"
        "scan_fused._MODULE = 'helpers.tiny_kernels'\n"
        "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()\n"
        "while len(os.listdir(sys.argv[1])) < 2:\n    time.sleep(0.002)\n"
        "k = scan_fused.kernels()\n"
        "print(scan_fused.cache_state())\n"
    )
    env = dict(os.environ, ALGNET_KERNEL_CACHE=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(gate)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o.strip() for o, _ in outs] == ["compiled", "compiled"]
    said = [e for _, e in outs if "preparing the fused CPU kernels" in e]
    assert len(said) == 1, outs
