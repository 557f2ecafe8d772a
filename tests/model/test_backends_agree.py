"""One ALGNet, several selective-scan backends: the outputs agree (timm's one-switch test)."""

import pytest
import torch
from helpers.seeded_weights import seeded_state_dict

from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.ops import available_backends

CONFIG = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=8)


def test_the_same_model_gives_the_same_output_under_every_cpu_backend():
    net = ALGNet(CONFIG)
    net.load_state_dict(seeded_state_dict(net.state_dict(), 5))
    net.eval().set_tlc(64)
    x = torch.rand(1, 3, 48, 80, generator=torch.Generator().manual_seed(3))
    outs = {}
    for backend in ("reference", "chunked", "fused"):
        if not available_backends("cpu")[backend]:
            pytest.skip(f"the {backend} scan is not available here")
        net.set_scan_backend(backend)
        with torch.inference_mode():
            outs[backend] = [o.double() for o in net(x)]
    for backend in ("chunked", "fused"):
        for scale, (got, ref) in enumerate(zip(outs[backend], outs["reference"], strict=True)):
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            assert err < 1e-4, f"{backend} differs from the reference at output {scale}: {err:.2e}"
    assert (outs["reference"][-1] - x.double()).abs().max() > 1e-3  # the model does something
