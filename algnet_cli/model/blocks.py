"""ALGNet building blocks. Attribute names follow the official ``algnet.py`` so checkpoints load strictly."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..ops.glue import aggregate, depthwise3x3_gate, gated_ffn, layer_norm_2d, local_mean, token_norm
from .config import ALGNetConfig
from .mamba import Mamba


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel (NAFNet's), eps 1e-6. (B, C, H, W) -> same."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.scan_backend: str | None = None  # its fused CPU kernel goes with the fused scan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, self.eps, backend=self.scan_backend)


class GlobalBranch(nn.Module):
    """Mamba over the feature map flattened row-major into H*W tokens of C channels.

    Runs in float32 outside autocast (the official code does so for fp16; here bf16 too, so the
    scan and its norms always accumulate in full precision). (B, C, H, W) -> (B, C, H, W) float32.
    """

    def __init__(self, channels: int, config: ALGNetConfig):
        super().__init__()
        self.dim = channels
        self.norm = nn.LayerNorm(channels)
        self.mamba = Mamba(channels, config.d_state, config.d_conv, config.expand, config.block_dt_rank(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            b, c, h, w = x.shape
            tokens = token_norm(x, self.norm.weight, self.norm.bias, self.norm.eps, backend=self.mamba.scan_backend)
            return self.mamba(tokens).transpose(1, 2).reshape(b, c, h, w)


class LocalPool(nn.Module):
    """Global average pool, or with the test-time local converter (TLC) a local box average.

    ``kernel`` None: mean over the whole map, (B, C, H, W) -> (B, C, 1, 1). Otherwise, when the
    kernel covers the map in both directions it is still the global mean; else a stride-1 box
    mean of min(H, kh) x min(W, kw), replicate-padded back to H x W (top/left get the smaller half).
    """

    def __init__(self) -> None:
        super().__init__()
        self.kernel: tuple[int, int] | None = None
        self.scan_backend: str | None = None  # its fused CPU kernel goes with the fused scan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.kernel is None or (self.kernel[0] >= h and self.kernel[1] >= w):
            return x.mean(dim=(-2, -1), keepdim=True)
        return local_mean(x, min(h, self.kernel[0]), min(w, self.kernel[1]), backend=self.scan_backend)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


class LocalBranch(nn.Module):
    """Simplified channel attention: pool, 1x1 conv, multiply with the input, 1x1 conv. (B,C,H,W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.ap = LocalPool()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(x * self.conv1(self.ap(x)))


class ALGBlock(nn.Module):
    """One ALGNet block (``BasicBlock`` upstream): global and local branches, learned aggregation, FFN.

    (B, C, H, W) -> (B, C, H, W). ``gamma`` and ``conv3_2`` exist upstream but are never used; they
    are kept so that official state dicts load strictly.
    """

    def __init__(self, channels: int, config: ALGNetConfig):
        super().__init__()
        c = channels
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3_2 = nn.Conv2d(2 * c, c, 1)  # unused upstream
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))  # unused upstream
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.g_layer = GlobalBranch(c, config)
        self.l_layer = LocalBranch(c)
        self.inside_all = nn.Parameter(torch.zeros(c, 1, 1))
        self.lamb_g = nn.Parameter(torch.zeros(c))
        self.lamb_l = nn.Parameter(torch.zeros(c))
        self.scan_backend: str | None = None  # its fused CPU kernels go with the fused scan

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        assert self.conv2.bias is not None  # built with a bias, as upstream
        x = depthwise3x3_gate(
            self.conv1(self.norm1(inp)), self.conv2.weight, self.conv2.bias, backend=self.scan_backend
        )
        # y = inp + g * (inside_all + 1) * lamb_g + l_layer(x) * lamb_l, the per-channel factors folded first
        local = self.l_layer
        assert local.conv1.bias is not None and local.conv2.bias is not None  # built with biases, as upstream
        y = aggregate(
            inp,
            self.g_layer(x),
            x,
            local.ap(x),
            (local.conv1.weight, local.conv1.bias),
            (local.conv2.weight, local.conv2.bias),
            (self.inside_all[:, 0, 0] + 1.0) * self.lamb_g,
            self.lamb_l,
            backend=self.scan_backend,
        )
        assert self.conv4.bias is not None and self.conv5.bias is not None  # built with biases, as upstream
        return gated_ffn(
            y,
            (self.norm2.weight, self.norm2.bias, self.norm2.eps),
            (self.conv4.weight, self.conv4.bias),
            (self.conv5.weight, self.conv5.bias),
            self.beta,
            backend=self.scan_backend,
        )


class BasicConv(nn.Module):
    """Conv (padding k//2) optionally followed by GELU, stored as ``main`` like upstream."""

    def __init__(self, cin: int, cout: int, kernel_size: int, relu: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)]
        if relu:
            layers.append(nn.GELU())
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class SFE(nn.Module):
    """Shallow feature extractor for a downscaled input: (B, 3, h, w) -> (B, out, h, w)."""

    def __init__(self, out_planes: int, in_planes: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(in_planes, out_planes // 4, 3),
            BasicConv(out_planes // 4, out_planes // 2, 1),
            BasicConv(out_planes // 2, out_planes // 2, 3),
            BasicConv(out_planes // 2, out_planes, 1, relu=False),
            nn.InstanceNorm2d(out_planes, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class FAM(nn.Module):
    """Merge encoder features with SFE features: 1x1 conv over their channel concatenation."""

    def __init__(self, channels: int):
        super().__init__()
        self.merge = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([x1, x2], dim=1))
