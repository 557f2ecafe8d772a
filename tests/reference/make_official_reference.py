"""Regenerate tests/data/official_reference.safetensors by running the official ALGNet code on the CPU.

Usage (from tests/): python -m reference.make_official_reference PATH/TO/official/algnet.py

The official file (github.com/Tombs98/ALGNet, Apache-2.0) is not part of this repository: fetch
it yourself. It imports ``utils.arch_utils`` and ``mamba_ssm`` and calls ``.cuda()``; this script
provides stand-ins written here (NAFNet's channel LayerNorm, and a plain per-step Mamba in
float64) and turns ``.cuda()`` into a no-op. Everything runs in float64; the results are stored
as float32 beside the seeds that regenerate weights and inputs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers.seeded_weights import seeded_image, seeded_state_dict  # noqa: E402
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "data" / "official_reference.safetensors"

CASES = [
    # name, constructor kwargs, input shape, tlc, weight seed, input seed
    (
        "default",
        dict(width=32, middle_blk_num=8, enc_blk_nums=[2, 2, 4, 8], dec_blk_nums=[8, 4, 2, 2]),
        (1, 3, 36, 52),
        False,
        1,
        11,
    ),
    (
        "nafnet",
        dict(width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1]),
        (1, 3, 40, 30),
        False,
        2,
        12,
    ),
    (
        "tiny",
        dict(width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1], dec_blk_nums=[1, 1, 1, 1]),
        (2, 3, 50, 70),
        False,
        3,
        13,
    ),
    (
        "tiny_tlc",
        dict(width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1], dec_blk_nums=[1, 1, 1, 1]),
        (1, 3, 420, 400),
        True,
        4,
        14,
    ),
]


class LayerNorm2d(nn.Module):
    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        return self.weight[None, :, None, None] * (x - mu) / torch.sqrt(var + self.eps) + self.bias[None, :, None, None]


class SequentialMamba(nn.Module):
    """mamba-ssm's Mamba block, computed step by step (stand-in for the CUDA package)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state, self.d_conv = d_state, d_conv
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=True)
        self.out_proj = nn.Linear(di, d_model, bias=False)
        self.A_log = nn.Parameter(torch.zeros(di, d_state))
        self.D = nn.Parameter(torch.ones(di))

    def forward(self, hs):  # (b, l, d_model)
        b, length, _ = hs.shape
        x, z = (hs @ self.in_proj.weight.T).chunk(2, dim=-1)  # (b, l, di) each
        K = self.d_conv
        xp = F.pad(x, (0, 0, K - 1, 0))  # causal: K-1 zeros before the first token
        w = self.conv1d.weight[:, 0, :]  # (di, K)
        conv = self.conv1d.bias + sum(w[:, k] * xp[:, k : k + length] for k in range(K))
        x = conv * torch.sigmoid(conv)
        dbl = x @ self.x_proj.weight.T
        dt, Bm, Cm = dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt @ self.dt_proj.weight.T + self.dt_proj.bias)
        A = -torch.exp(self.A_log)
        h = hs.new_zeros(b, x.shape[-1], self.d_state)
        ys = []
        for t in range(length):
            h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[:, :, None] * Bm[:, t, None, :]
            ys.append((h * Cm[:, t, None, :]).sum(-1) + self.D * x[:, t])
        y = torch.stack(ys, dim=1) * (z * torch.sigmoid(z))
        return y @ self.out_proj.weight.T


def load_official(path: Path):
    utils = types.ModuleType("utils")
    arch = types.ModuleType("utils.arch_utils")
    arch.LayerNorm2d = LayerNorm2d
    arch.MySequential = nn.Sequential
    utils.arch_utils = arch
    mamba = types.ModuleType("mamba_ssm")
    mamba.Mamba = SequentialMamba
    sys.modules.update({"utils": utils, "utils.arch_utils": arch, "mamba_ssm": mamba})
    nn.Module.cuda = lambda self, *a, **k: self  # the official TLC code moves everything to CUDA
    torch.Tensor.cuda = lambda self, *a, **k: self
    spec = importlib.util.spec_from_file_location("official_algnet", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    official = load_official(Path(sys.argv[1]))
    torch.set_default_dtype(torch.float64)
    tensors, meta = {}, {}
    for name, kwargs, shape, tlc, wseed, iseed in CASES:
        if tlc:
            # ALGNetLocal fixes its pooling kernels on a first forward, with its initial weights
            net = official.ALGNetLocal(**kwargs, train_size=(1, 3, 256, 256), fast_imp=False)
        else:
            net = official.ALGNet(**kwargs)
        sd = seeded_state_dict(net.state_dict(), wseed)
        net.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
        net.eval()
        x = seeded_image(shape, iseed).double()
        with torch.no_grad():
            outs = net(x)
        for i, o in enumerate(outs):
            tensors[f"{name}.out{i}"] = o.float().contiguous()
        meta[name] = dict(kwargs=kwargs, input_shape=list(shape), tlc=tlc, weight_seed=wseed, input_seed=iseed)
        print(name, [tuple(o.shape) for o in outs], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT), metadata={"cases": json.dumps(meta)})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
