"""Every scan backend against a naive float64 loop written here (independent of the package)."""

import pytest
import torch
from helpers.scan import GRID, assert_gradients_match_reference, make_inputs, naive_scan, on_cpu_once, rel_err

from algnet_cli.errors import ScanBackendError
from algnet_cli.ops import dispatch, scan_triton
from algnet_cli.ops.scan_chunked import selective_scan_chunked
from algnet_cli.ops.scan_ref import selective_scan_reference


def _chunked_small(*args):
    return selective_scan_chunked(*args, chunk=4, block=24)


BACKENDS = {
    "reference": selective_scan_reference,
    "chunked": selective_scan_chunked,
    "chunked-small-blocks": _chunked_small,
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("shape", GRID)
@pytest.mark.parametrize("softplus", [True, False])
def test_backend_matches_naive_loop(backend, shape, softplus):
    b, d, n, length, scale = shape
    args = make_inputs(b, d, n, length, scale, seed=length)
    if not softplus:  # keep delta and its bias positive, as softplus would
        u, delta, A, B, C, D, z, bias = args
        args = (u, delta.abs(), A, B, C, D, z, bias.abs())
    expected = naive_scan(*args, softplus)
    got = BACKENDS[backend](*args, softplus)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.isfinite(got).all()
    assert rel_err(got, expected) < 1e-5


@pytest.mark.parametrize("extras", [True, False])
def test_chunked_without_optional_inputs_and_in_half(extras):
    args = make_inputs(2, 4, 8, 100, extras=extras)
    expected = naive_scan(*args, True)
    assert rel_err(selective_scan_chunked(*args, True), expected) < 1e-5
    half = selective_scan_chunked(args[0].bfloat16(), *args[1:], True)
    assert half.dtype == torch.bfloat16  # returned in the input's dtype, accumulated in float32
    assert rel_err(half.float(), expected) < 2e-2


triton_available = scan_triton.available("cpu")


@pytest.mark.skipif(not triton_available, reason="triton not installed (interpreter tests need it)")
@pytest.mark.parametrize(
    "shape",
    on_cpu_once(
        [
            ((1, 1, 1, 1, 1.0),),
            ((2, 3, 4, 17, 1.0),),
            ((1, 2, 32, 300, 1.0),),
            ((2, 2, 5, 260, 30.0),),
            ((1, 1, 16, 1100, 1.0),),
        ],  # fmt: skip
        cpu_case=1,
    ),
)
def test_triton_kernel_under_interpreter(shape):
    b, d, n, length, scale = shape
    args = make_inputs(b, d, n, length, scale, seed=7)
    expected = naive_scan(*args, True)
    got = scan_triton.selective_scan_triton(*args, True)
    assert rel_err(got, expected) < 1e-5
    no_extras = make_inputs(b, d, n, length, scale, seed=8, extras=False)
    no_extras = (no_extras[0], no_extras[1].abs(), *no_extras[2:])
    assert rel_err(scan_triton.selective_scan_triton(*no_extras, False), naive_scan(*no_extras, False)) < 1e-5


def test_dispatcher_auto_choice(monkeypatch):
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: False)
    monkeypatch.setattr(dispatch.scan_triton, "available", lambda device_type="cuda": False)
    monkeypatch.setattr(dispatch.scan_fused, "available", lambda: False)
    assert dispatch.resolve_backend("auto", "cpu") == "chunked"
    assert dispatch.resolve_backend("auto", "cuda") == "chunked"
    monkeypatch.setattr(dispatch.scan_triton, "available", lambda device_type="cuda": device_type == "cuda")
    assert dispatch.resolve_backend("auto", "cuda") == "triton"
    assert dispatch.resolve_backend("auto", "cpu") == "chunked"
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: True)
    assert dispatch.resolve_backend("auto", "cuda") == "mamba"
    with pytest.raises(ScanBackendError, match="CUDA"):
        dispatch.resolve_backend("mamba", "cpu")


def test_dispatcher_unavailable_backends_and_env(monkeypatch):
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: False)
    with pytest.raises(ScanBackendError, match="mamba-ssm"):
        dispatch.resolve_backend("mamba", "cuda")
    with pytest.raises(ScanBackendError, match="unknown scan backend"):
        dispatch.resolve_backend("fastest", "cpu")
    monkeypatch.setenv("ALGNET_SCAN", "reference")
    assert dispatch.resolve_backend(None, "cpu") == "reference"
    monkeypatch.setenv("ALGNET_SCAN", "nonsense")
    with pytest.raises(ScanBackendError, match="ALGNET_SCAN"):
        dispatch.resolve_backend(None, "cpu")


def test_dispatcher_logs_its_choice(caplog, monkeypatch):
    monkeypatch.setattr(dispatch, "_announced", set())
    args = make_inputs(1, 2, 3, 5)
    with caplog.at_level("INFO", logger="algnet_cli.scan"):
        out = dispatch.selective_scan(*args, delta_softplus=True, backend="reference")
    assert "selective scan backend: reference on cpu" in caplog.text
    assert rel_err(out, naive_scan(*args, True)) < 1e-5


CHUNKED_GRAD_GRID = [
    # b, d, n, length, delta scale, chunk, block, extras: one step; several blocks with a padded
    # last one; chunks that do not divide the length; one long block; decays that underflow
    (1, 1, 1, 1, 1.0, 4, 24, True),
    (2, 3, 4, 75, 1.0, 4, 24, True),
    (1, 2, 5, 77, 1.0, 8, 16, False),
    (2, 4, 3, 130, 1.0, 16, 256, True),
    (1, 3, 4, 90, 30.0, 4, 32, True),
]


@pytest.mark.parametrize("b,d,n,length,scale,chunk,block,extras", CHUNKED_GRAD_GRID)
def test_chunked_gradients_equal_the_references(b, d, n, length, scale, chunk, block, extras):
    """The hand-written backward against autograd through the float64 reference loop."""
    args = list(make_inputs(b, d, n, length, delta_scale=scale, seed=11, extras=extras))
    assert_gradients_match_reference(
        lambda *leaves: selective_scan_chunked(*leaves, True, chunk=chunk, block=block), args, softplus=True
    )


def test_chunked_gradient_reaches_only_what_needs_it():
    """Gradients for some inputs only (A and the skip frozen, as when fine-tuning part of a model)."""
    args = make_inputs(1, 2, 3, 40, seed=5)
    u = args[0].clone().requires_grad_(True)
    out = selective_scan_chunked(u, *args[1:], True, chunk=4, block=16)
    (g,) = torch.autograd.grad(out.sum(), [u])
    ref_u = args[0].double().clone().requires_grad_(True)
    (r,) = torch.autograd.grad(selective_scan_reference(ref_u, *(a.double() for a in args[1:]), True).sum(), [ref_u])
    assert rel_err(g, r) < 1e-5


def test_a_forward_only_backend_is_never_trained_through(monkeypatch):
    """auto skips a forward-only backend when gradients are needed; asking for it explicitly refuses."""
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: False)
    monkeypatch.setattr(dispatch.scan_triton, "available", lambda device_type="cuda": device_type == "cuda")
    assert dispatch.resolve_backend("auto", "cuda", needs_grad=True) == "triton"  # it has a backward kernel
    monkeypatch.setattr(dispatch, "FORWARD_ONLY", frozenset({"triton"}))
    assert dispatch.resolve_backend("auto", "cuda", needs_grad=False) == "triton"
    assert dispatch.resolve_backend("auto", "cuda", needs_grad=True) == "chunked"
    with pytest.raises(ScanBackendError, match="forward-only"):
        dispatch.resolve_backend("triton", "cuda", needs_grad=True)
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: True)
    assert dispatch.resolve_backend("auto", "cuda", needs_grad=True) == "mamba"


TRITON_GRAD_GRID = [
    # b, d, n, length, extras, softplus: tiles of 128 steps, a partial last tile, one short tile (on the
    # CPU: two tiles, the second of 2 steps, with every optional input)
    (2, 3, 4, 300, True, True),
    (1, 2, 5, 77, False, True),
    (1, 2, 16, 129, True, False),
    (1, 2, 8, 40, True, "long steps"),  # delta + 8: decays flush to zero
]


@pytest.mark.parametrize(
    "b,d,n,length,extras,softplus",
    on_cpu_once([*TRITON_GRAD_GRID, (1, 1, 4, 130, True, True)], cpu_case=len(TRITON_GRAD_GRID)),
)
def test_triton_backward_matches_the_reference_gradients(b, d, n, length, extras, softplus):
    if not scan_triton.available("cpu"):
        pytest.skip("triton is not installed")
    args = list(make_inputs(b, d, n, length, seed=3, extras=extras))
    if softplus == "long steps":
        args[1], softplus = args[1] + 8.0, True
    if not softplus:  # positive steps without softplus
        args[1] = args[1].abs()
        if extras:
            args[7] = args[7].abs()
    assert_gradients_match_reference(
        lambda *leaves: scan_triton.selective_scan_triton(*leaves, softplus), args, softplus
    )


def test_selective_scan_with_grad_keeps_gradients_when_triton_is_the_auto_choice(monkeypatch):
    # pretend the triton kernel is the auto choice on this device (it runs under the interpreter)
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: False)
    monkeypatch.setattr(
        dispatch, "available_backends", lambda device_type: dict(reference=True, chunked=True, triton=True, mamba=False)
    )
    calls = []
    real_triton = dispatch._FUNCS["triton"]
    monkeypatch.setitem(dispatch._FUNCS, "triton", lambda *a: calls.append(1) or real_triton(*a))
    args = make_inputs(1, 3, 4, 40, seed=5)
    with torch.no_grad():
        dispatch.selective_scan(*args, delta_softplus=True, backend="auto")
    assert calls == [1]  # inference: the fused kernel
    leaves = [a.clone().requires_grad_(True) for a in args]
    out = dispatch.selective_scan(*leaves, delta_softplus=True, backend="auto")
    assert calls == [1, 1]  # training: the kernel too, with its backward
    grads = torch.autograd.grad(out.sum(), leaves)
    ref_leaves = [a.double().clone().requires_grad_(True) for a in args]
    ref_grads = torch.autograd.grad(selective_scan_reference(*ref_leaves, True).sum(), ref_leaves)
    for g, r in zip(grads, ref_grads):
        assert g is not None and rel_err(g, r) < 1e-4
