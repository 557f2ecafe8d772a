"""The block's glue on the CPU: the numba kernels and the torch formulas against independent references."""

import pytest
import torch
import torch.nn.functional as F

from algnet_cli.ops import available_backends, glue

fused_only = pytest.mark.skipif(not available_backends("cpu")["fused"], reason="numba is not installed")


def _box_reference(x: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """avg_pool2d's stride-1 windows (a different algorithm: a direct sum per window), replicate-padded."""
    box = F.avg_pool2d(x.double(), (k1, k2), stride=1)
    dh, dw = k1 - 1, k2 - 1
    return F.pad(box, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
@pytest.mark.parametrize("k1,k2", [(5, 7), (1, 1), (17, 1), (2, 23), (17, 23), (6, 4)])
def test_the_local_mean_is_the_mean_of_each_window_padded_by_replication(backend, k1, k2):
    x = torch.randn(2, 3, 17, 23, generator=torch.Generator().manual_seed(k1 * 31 + k2)) * 4 + 2
    with torch.inference_mode():
        got = glue.local_mean(x, k1, k2, backend=backend)
    assert got.shape == x.shape and got.dtype == torch.float32
    # the torch formula takes differences of a float32 integral image, which loses a few digits
    tol = 1e-5 if backend == "fused" else 2e-4
    torch.testing.assert_close(got.double(), _box_reference(x, k1, k2), atol=tol, rtol=1e-5)


@fused_only
def test_the_fused_local_mean_stays_exact_over_a_large_plane():
    """Running sums over a 720x1280 plane (float64 in the kernel): a 1x1 window gives the input back."""
    x = torch.rand(1, 2, 720, 1280, generator=torch.Generator().manual_seed(1)) * 100
    with torch.inference_mode():
        same = glue.local_mean(x, 1, 1, backend="fused")
        wide = glue.local_mean(x, 384, 640, backend="fused")
    assert torch.equal(same, x)
    # the reference here is a float64 integral image (avg_pool2d's direct sums take a minute at this size)
    s = F.pad(x.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    k1, k2 = 384, 640
    box = (s[..., k1:, k2:] - s[..., k1:, :-k2] - s[..., :-k1, k2:] + s[..., :-k1, :-k2]) / (k1 * k2)
    expected = F.pad(box, ((k2 - 1) // 2, k2 // 2, (k1 - 1) // 2, k1 // 2), mode="replicate")
    torch.testing.assert_close(wide.double(), expected, atol=1e-4, rtol=1e-6)


def _norm_reference(x, weight, bias, eps):
    x = x.double()
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    return (x - mean) / (var + eps).sqrt() * weight.double()[:, None, None] + bias.double()[:, None, None]


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
@pytest.mark.parametrize("shape", [(1, 16, 31, 45), (2, 5, 7, 3), (1, 64, 90, 160)])
def test_the_channel_layer_norm_matches_its_formula(backend, shape):
    g = torch.Generator().manual_seed(shape[1])
    x = torch.randn(*shape, generator=g) * 3 + 1
    weight, bias = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    with torch.inference_mode():
        got = glue.layer_norm_2d(x, weight, bias, 1e-6, backend=backend)
    torch.testing.assert_close(got.double(), _norm_reference(x, weight, bias, 1e-6), atol=2e-5, rtol=1e-5)


@fused_only
def test_the_fused_glue_reads_any_layout_and_leaves_training_to_torch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 8, 20, 30, generator=g)
    cl = x.contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(8, generator=g, requires_grad=True), torch.randn(8, generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(
            glue.layer_norm_2d(cl, weight, bias, 1e-6, backend="fused"),
            glue.layer_norm_2d(x, weight, bias, 1e-6, backend="chunked"),
        )
        torch.testing.assert_close(
            glue.local_mean(cl, 5, 9, backend="fused"), glue.local_mean(x, 5, 9, backend="chunked")
        )
    # with gradients wanted the torch formulas run, and their gradients are right
    xr = x.clone().requires_grad_(True)
    out = glue.layer_norm_2d(xr, weight, bias, 1e-6, backend="fused")
    out.square().sum().backward()
    xd, wd = x.double().requires_grad_(True), weight.detach().double().requires_grad_(True)
    ref = _norm_reference(xd, wd, bias, 1e-6)
    ref.square().sum().backward()
    torch.testing.assert_close(xr.grad.double(), xd.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(weight.grad.double(), wd.grad, atol=1e-3, rtol=1e-4)
    xm = x.clone().requires_grad_(True)
    glue.local_mean(xm, 5, 9, backend="fused").sum().backward()
    assert xm.grad is not None and xm.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
def test_the_token_norm_is_the_layer_norm_of_the_row_major_tokens(backend):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 24, 13, 21, generator=g) * 2 - 1
    weight, bias = torch.randn(24, generator=g), torch.randn(24, generator=g)
    with torch.inference_mode():
        got = glue.token_norm(x, weight, bias, 1e-5, backend=backend)
    assert got.shape == (2, 13 * 21, 24) and got.is_contiguous()
    expected = _norm_reference(x, weight, bias, 1e-5).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
@pytest.mark.parametrize("shape", [(1, 32, 37, 53), (2, 6, 1, 9), (1, 4, 8, 1), (1, 2, 1, 1)])
def test_the_gated_depthwise_convolution_is_simplegate_over_the_conv(backend, shape):
    g = torch.Generator().manual_seed(shape[2] * 7 + shape[3])
    x = torch.randn(*shape, generator=g)
    weight, bias = torch.randn(shape[1], 1, 3, 3, generator=g), torch.randn(shape[1], generator=g)
    with torch.inference_mode():
        got = glue.depthwise3x3_gate(x, weight, bias, backend=backend)
    full = F.conv2d(x.double(), weight.double(), bias.double(), padding=1, groups=shape[1])
    a, b = full.chunk(2, dim=1)
    assert got.shape == a.shape
    torch.testing.assert_close(got.double(), a * b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
@pytest.mark.parametrize("shape", [(1, 16, 19, 27), (2, 5, 3, 300)])
def test_the_feed_forward_half_is_norm_conv_gate_conv_and_residual(backend, shape):
    """Against the block's steps written out in float64: LayerNorm2d, 1x1 conv to 2C, SimpleGate, 1x1 conv,
    y + beta * that."""
    g = torch.Generator().manual_seed(shape[1])
    c = shape[1]
    y = torch.randn(*shape, generator=g) * 2
    nw, nb = torch.randn(c, generator=g), torch.randn(c, generator=g)
    w4, b4 = torch.randn(2 * c, c, 1, 1, generator=g) / c**0.5, torch.randn(2 * c, generator=g)
    w5, b5 = torch.randn(c, c, 1, 1, generator=g) / c**0.5, torch.randn(c, generator=g)
    beta = torch.randn(1, c, 1, 1, generator=g)
    with torch.inference_mode():
        got = glue.gated_ffn(y, (nw, nb, 1e-6), (w4, b4), (w5, b5), beta, backend=backend)
    n = _norm_reference(y, nw, nb, 1e-6)
    a, b = F.conv2d(n, w4.double(), b4.double()).chunk(2, dim=1)
    expected = y.double() + beta.double() * F.conv2d(a * b, w5.double(), b5.double())
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)


@fused_only
def test_the_fused_feed_forward_runs_only_where_it_pays(monkeypatch):
    """Above FFN_FUSED_MAX_CHANNELS the torch convolutions run (the kernel's plain loops lose there)."""
    calls = []
    real = glue.scan_fused.run_tasks
    monkeypatch.setattr(glue.scan_fused, "run_tasks", lambda kernel, *a: (calls.append(kernel), real(kernel, *a)))
    for c in (glue.FFN_FUSED_MAX_CHANNELS, 2 * glue.FFN_FUSED_MAX_CHANNELS):
        calls.clear()
        y = torch.randn(1, c, 4, 5)
        conv4 = (torch.randn(2 * c, c, 1, 1), torch.randn(2 * c))
        conv5 = (torch.randn(c, c, 1, 1), torch.randn(c))
        with torch.inference_mode():
            glue.gated_ffn(y, (torch.ones(c), torch.zeros(c), 1e-6), conv4, conv5, torch.ones(1, c, 1, 1))
        names = [k.__name__ for k in calls]
        assert names == (["gated_ffn"] if c <= glue.FFN_FUSED_MAX_CHANNELS else ["layer_norm_channels"]), names


@pytest.mark.parametrize("backend", [pytest.param("fused", marks=fused_only), "chunked"])
@pytest.mark.parametrize("c,pooled", [(16, "local"), (8, "global"), (2 * 64, "local")])
def test_the_aggregation_adds_both_branches_with_the_local_convolutions(backend, c, pooled):
    """inp + g * sg + conv2(x * conv1(box)) * sl, against the steps in float64; g given as the global
    branch gives it (a channels-last view of its tokens); box local (full size) or global (1x1)."""
    gen = torch.Generator().manual_seed(c)
    inp, x = torch.randn(1, c, 11, 37, generator=gen), torch.randn(1, c, 11, 37, generator=gen)
    g = torch.randn(1, 11 * 37, c, generator=gen).transpose(1, 2).reshape(1, c, 11, 37)
    box = x.mean((2, 3), keepdim=True) if pooled == "global" else torch.randn(1, c, 11, 37, generator=gen)
    w1, b1 = torch.randn(c, c, 1, 1, generator=gen) / c**0.5, torch.randn(c, generator=gen)
    w2, b2 = torch.randn(c, c, 1, 1, generator=gen) / c**0.5, torch.randn(c, generator=gen)
    sg, sl = torch.randn(c, generator=gen), torch.randn(c, generator=gen)
    with torch.inference_mode():
        got = glue.aggregate(inp, g, x, box, (w1, b1), (w2, b2), sg, sl, backend=backend)
    d = torch.float64
    loc = F.conv2d(x.to(d) * F.conv2d(box.to(d), w1.to(d), b1.to(d)), w2.to(d), b2.to(d))
    expected = inp.to(d) + g.to(d) * sg.to(d)[:, None, None] + loc * sl.to(d)[:, None, None]
    assert got.shape == inp.shape
    torch.testing.assert_close(got.to(d), expected, atol=1e-4, rtol=1e-5)
    if pooled == "global":  # one value per channel gives what the pool spread over every pixel gives
        full = box.expand_as(x).contiguous()
        with torch.inference_mode():
            spread = glue.aggregate(inp, g, x, full, (w1, b1), (w2, b2), sg, sl, backend=backend)
        assert torch.equal(got, spread)
