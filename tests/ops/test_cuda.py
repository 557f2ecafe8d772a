"""GPU checks (skipped without CUDA): the Triton kernel and the model on the device."""

import pytest
import torch
from helpers.scan import make_inputs, naive_scan, rel_err
from helpers.seeded_weights import seeded_image, seeded_state_dict

from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.ops import scan_triton
from algnet_cli.runner import Runner, RunOptions

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1, 1.0), (2, 3, 4, 17, 1.0), (1, 8, 32, 3000, 1.0), (2, 4, 16, 1000, 30.0)]
)
def test_triton_on_cuda_matches_naive_loop(shape):
    if not scan_triton.available("cuda"):
        pytest.skip("triton not importable")
    b, d, n, length, scale = shape
    args = make_inputs(b, d, n, length, scale, seed=3)
    got = scan_triton.selective_scan_triton(*[a.cuda() if a is not None else None for a in args], True)
    assert rel_err(got.cpu(), naive_scan(*args, True)) < 1e-5


@pytest.mark.parametrize("length", [2048 - 1, 2048 + 1, 3 * 2048 + 17])
def test_chunked_triton_on_cuda_matches_naive_loop_forward_and_backward(length):
    from helpers.scan import assert_gradients_match_reference

    if not scan_triton.available("cuda"):
        pytest.skip("triton not importable")
    args = make_inputs(1, 6, 16, length, 1.0, seed=length)
    got = scan_triton.selective_scan_triton(*[a.cuda() for a in args], True, chunk=2048)
    assert rel_err(got.cpu(), naive_scan(*args, True)) < 1e-5
    assert_gradients_match_reference(
        lambda *leaves: scan_triton.selective_scan_triton(*[t.cuda() for t in leaves], True, chunk=2048).cpu(),
        list(args),
        True,
    )


def test_model_on_cuda_matches_cpu():
    cfg = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))
    net = ALGNet(cfg)
    net.load_state_dict(seeded_state_dict(net.state_dict(), 3))
    x = seeded_image((2, 3, 50, 70), 4)
    cpu = Runner(net, RunOptions(device="cpu", precision="fp32"))(x)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = Runner(net, RunOptions(device="cuda", precision="fp32"))(x).cpu()
    assert (gpu - cpu).abs().max() < 1e-4
    bf16 = Runner(net, RunOptions(device="cuda", precision="bf16"))(x).cpu()
    assert torch.isfinite(bf16).all() and (bf16 - cpu).abs().mean() < 0.05
