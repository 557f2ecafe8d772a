"""The chunk-parallel Triton scan under Triton's CPU interpreter, forward and backward, against the float64
loop written in the test helpers (independent of the package) and autograd through the float64 reference.

Chunks of 8 steps in tiles of 4 stand in for the GPU's 2048 and 32, so every boundary case is a few
dozen steps: L = 1, a chunk - 1, a chunk, a chunk + 1, and 3 chunks + 17.
"""

import pytest
import torch
from helpers.scan import assert_gradients_match_reference, make_inputs, naive_scan, on_cpu_once, rel_err

from algnet_cli.ops import dispatch, scan_triton

pytestmark = pytest.mark.skipif(not scan_triton.available("cpu"), reason="triton is not installed")

CHUNK, TILE = 8, 4


def _scan(softplus):
    return lambda *leaves: scan_triton.selective_scan_triton(*leaves, softplus, chunk=CHUNK, tile=TILE)


def _inputs(d, n, length, shift=0.0, extras=True, seed=0):
    args = list(make_inputs(1, d, n, length, seed=seed, extras=extras))
    args[1] = args[1] + shift
    return args


@pytest.mark.parametrize(
    "d, n, length, shift, extras",
    on_cpu_once(
        [
            (6, 16, 1, 0.0, True),  # one step
            (6, 16, CHUNK - 1, 0.0, True),  # a partial first chunk
            (6, 16, CHUNK, 0.0, True),  # exactly one chunk
            (6, 16, CHUNK + 1, 0.0, True),  # one step into the second chunk
            (5, 16, 3 * CHUNK + 17, 0.0, True),  # four chunks, the last partial; 5 channels in blocks of 4
            (5, 32, 3 * CHUNK + 17, 8.0, True),  # 32 states; long steps: decays flush to zero within a chunk
            (6, 1, 3 * CHUNK + 17, -30.0, False),  # one state; steps of 1e-13 across every chunk; no D, z, bias
            (5, 4, 2 * CHUNK + 3, 0.0, True),  # on the CPU: three chunks, the last partial; blocks of 4 and 1
        ],
        cpu_case=7,
    ),
)
def test_chunked_forward_and_backward_match_the_float64_reference(d, n, length, shift, extras):
    args = _inputs(d, n, length, shift, extras, seed=length + n)
    got = _scan(True)(*args)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert rel_err(got, naive_scan(*args, True)) < 1e-5
    assert_gradients_match_reference(_scan(True), args, True)


def test_chunked_without_softplus_and_over_a_batch():
    args = list(make_inputs(2, 3, 8, 2 * CHUNK + 3, seed=5))
    args[1], args[7] = args[1].abs(), args[7].abs()  # positive steps without softplus
    assert rel_err(_scan(False)(*args), naive_scan(*args, False)) < 1e-5
    assert_gradients_match_reference(_scan(False), args, False)


def test_the_chunked_kernel_gives_the_single_pass_result():
    args = make_inputs(1, 4, 16, 3 * CHUNK + 17, seed=9)
    single = scan_triton.selective_scan_triton(*args, True, chunk=0)
    assert rel_err(_scan(True)(*args), single.double()) < 1e-5


def test_a_chunk_that_is_not_a_multiple_of_the_tile_is_refused():
    with pytest.raises(ValueError, match="multiple of the tile"):
        scan_triton.selective_scan_triton(*make_inputs(1, 2, 4, 20), True, chunk=10, tile=4)


def test_the_switch_takes_the_chunked_kernel_for_long_scans_with_few_channels(monkeypatch):
    long = scan_triton.SWITCH_LENGTH
    assert scan_triton.use_chunked(1, 64, 921_600)  # a 720p feature map at batch 1
    assert not scan_triton.use_chunked(1, 64, long - 1)  # short: one pass
    assert not scan_triton.use_chunked(64, 64, 921_600)  # 4096 programs fill a 132-SM card already
    # auto on CUDA is triton (without mamba-ssm), and the triton backend switches by length
    monkeypatch.setattr(dispatch.scan_mamba, "available", lambda: False)
    monkeypatch.setattr(dispatch.scan_triton, "available", lambda device_type="cuda": device_type == "cuda")
    assert dispatch.resolve_backend("auto", "cuda") == "triton"
    calls = []
    monkeypatch.setattr(scan_triton, "SWITCH_LENGTH", 2 * CHUNK)
    monkeypatch.setattr(scan_triton, "CHUNK", CHUNK)
    monkeypatch.setattr(scan_triton, "CHUNK_TILE", TILE)
    monkeypatch.setattr(scan_triton, "available", lambda device_type="cuda": True)
    import algnet_cli.ops.scan_triton_chunked as chunked

    real = chunked.chunked_scan
    monkeypatch.setattr(chunked, "chunked_scan", lambda *a: calls.append(a[-2:]) or real(*a))
    args = make_inputs(1, 2, 4, 2 * CHUNK, seed=1)
    out = scan_triton.selective_scan_triton(*args, True, tile=TILE)
    assert calls == [(CHUNK, TILE)] and rel_err(out, naive_scan(*args, True)) < 1e-5
    scan_triton.selective_scan_triton(*make_inputs(1, 2, 4, 2 * CHUNK - 1), True)
    assert len(calls) == 1  # below the switch: the single pass
