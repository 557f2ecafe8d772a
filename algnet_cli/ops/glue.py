"""The glue of an ALGNet block: the local converter's pool, the channel layer norms, the gated
depthwise convolution, the aggregation of the two branches with the local one's convolutions, and the
feed-forward half, each as one CPU kernel where it can be, else in torch.

With the fused CPU scan (numba), on float32 CPU tensors and with no gradients wanted, a numba kernel
streams the tensor once (:mod:`._numba_glue`); otherwise (training, another device or dtype, another
scan backend) the torch formulas below run. Both compute the same values (tested to 1e-5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import scan_fused
from .dispatch import prepare
from .scan_ref import needs_grad


def _fused(x: torch.Tensor, backend: str | None, *params: torch.Tensor | None) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not needs_grad(x, *params)
        and prepare(backend, "cpu") == "fused"
    )


def depthwise3x3_gate(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """NAFNet's SimpleGate over a depthwise 3x3 convolution (padding 1): (B, 2C, H, W) -> (B, C, H, W),
    ``a * b`` of the two channel halves of ``conv2d(x, weight, bias, padding=1, groups=2C)``. The
    kernel never makes the 2C-channel map."""
    if _fused(x, backend, weight, bias):
        k = scan_fused.kernels()
        b, c2, h, w = x.shape
        out = torch.empty(b, c2 // 2, h, w)
        args = (x.detach().contiguous().numpy(), scan_fused.vector(weight).reshape(c2, 9), scan_fused.vector(bias))
        scan_fused.run_tasks(k.depthwise3x3_gate, b * (c2 // 2), *args, out.numpy())
        return out
    a, g = F.conv2d(x, weight, bias, padding=1, groups=x.shape[1]).chunk(2, dim=1)
    return a * g


#: the fused feed-forward pass runs up to this many channels. Its 1x1 convolutions are plain loops:
#: against oneDNN's on a 2-core EPYC it took 0.43x the time at 16 channels and 0.76x at 64 (memory-bound,
#: the intermediates' traffic saved), but 1.5x at 128 and 2.9x at 512 (compute-bound)
FFN_FUSED_MAX_CHANNELS = 64


def gated_ffn(
    y: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor, float],
    conv4: tuple[torch.Tensor, torch.Tensor],
    conv5: tuple[torch.Tensor, torch.Tensor],
    beta: torch.Tensor,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """The second half of an ALGNet block: ``y + beta * conv5(gate(conv4(norm(y))))``, (B, C, H, W) -> same.

    norm: LayerNorm2d's (weight, bias, eps); conv4: a 1x1 convolution to 2C channels, (weight, bias);
    gate: the product of its two channel halves; conv5: a 1x1 convolution, (weight, bias); beta: (1, C,
    1, 1). With the fused scan and up to FFN_FUSED_MAX_CHANNELS channels, one numba pass over the
    pixels keeps every intermediate in cache.
    """
    b, c, h, w = y.shape
    if c <= FFN_FUSED_MAX_CHANNELS and _fused(y, backend, *norm[:2], *conv4, *conv5, beta):
        k = scan_fused.kernels()
        flat = y.detach().contiguous().view(b, c, h * w)
        out = torch.empty_like(flat)
        vec = scan_fused.vector
        steps = 256
        weights = (vec(conv4[0]).reshape(2 * c, c), vec(conv4[1]), vec(conv5[0]).reshape(c, c), vec(conv5[1]))
        args = (vec(norm[0]), vec(norm[1]), float(norm[2]), *weights, vec(beta).reshape(c))
        scan_fused.run_tasks(k.gated_ffn, b * -(-h * w // steps), steps, flat.numpy(), *args, out.numpy())
        return out.view(b, c, h, w)
    x = layer_norm_2d(y, *norm, backend=backend)
    a, g = F.conv2d(x, *conv4).chunk(2, dim=1)
    return torch.addcmul(y, F.conv2d(a * g, *conv5), beta)


def aggregate(
    inp: torch.Tensor,
    g: torch.Tensor,
    x: torch.Tensor,
    box: torch.Tensor,
    conv1: tuple[torch.Tensor, torch.Tensor],
    conv2: tuple[torch.Tensor, torch.Tensor],
    scale_g: torch.Tensor,
    scale_l: torch.Tensor,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """An ALGNet block's aggregation: ``inp + g * scale_g + conv2(x * conv1(box)) * scale_l``.

    inp, g, x: (B, C, H, W), g of any layout (the global branch gives a view of its tokens); box: the
    local branch's pool of x, (B, C, H, W) or (B, C, 1, 1); conv1, conv2: the local branch's 1x1
    convolutions, (weight, bias); scale_g, scale_l: (C,). With the fused scan and up to
    FFN_FUSED_MAX_CHANNELS channels, one numba pass over the pixels; else torch.
    """
    b, c, h, w = x.shape
    params = (*conv1, *conv2, scale_g, scale_l)
    same = all(t.dtype == torch.float32 for t in (inp, g, box))
    if c <= FFN_FUSED_MAX_CHANNELS and same and _fused(x, backend, inp, g, box, *params):
        k = scan_fused.kernels()
        vec = scan_fused.vector
        flat = [t.detach().expand(b, c, h, w).contiguous().view(b, c, h * w).numpy() for t in (inp, x)]
        pixels = 1 if box.shape[-2:] == (1, 1) else h * w  # a global pool stays one value per channel
        flat.append(box.detach().expand(b, c, *box.shape[-2:]).contiguous().view(b, c, pixels).numpy())
        tokens = g.detach().permute(0, 2, 3, 1).reshape(b, h * w, c).contiguous()  # a view of the tokens
        out = torch.empty(b, c, h * w)
        weights = (vec(conv1[0]).reshape(c, c), vec(conv1[1]), vec(conv2[0]).reshape(c, c), vec(conv2[1]))
        args = (*flat, tokens.numpy(), *weights, vec(scale_g), vec(scale_l), out.numpy())
        steps = 256
        scan_fused.run_tasks(k.aggregate, b * -(-h * w // steps), steps, *args)
        return out.view(b, c, h, w)
    loc = F.conv2d(x * F.conv2d(box, *conv1), *conv2)
    return torch.addcmul(inp, g, scale_g[None, :, None, None]).addcmul_(loc, scale_l[None, :, None, None])


def local_mean(x: torch.Tensor, k1: int, k2: int, *, backend: str | None = None) -> torch.Tensor:
    """The mean of every k1 x k2 window (k1 <= H, k2 <= W), replicate-padded back to H x W, the
    smaller half of the padding at the top and left. (B, C, H, W) -> same."""
    if _fused(x, backend):
        k = scan_fused.kernels()
        b, c, h, w = x.shape
        planes = x.detach().contiguous().view(b * c, h, w)
        out = torch.empty_like(planes)
        scan_fused.run_tasks(k.box_mean, b * c, planes.numpy(), k1, k2, out.numpy())
        return out.view(b, c, h, w)
    h, w = x.shape[-2:]
    dtype = x.dtype
    s = F.pad(x.float().cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # integral image
    box = (s[..., k1:, k2:] - s[..., k1:, :-k2] - s[..., :-k1, k2:] + s[..., :-k1, :-k2]) / (k1 * k2)
    dh, dw = h - box.shape[-2], w - box.shape[-1]
    box = F.pad(box, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    return box.to(dtype)


def layer_norm_2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, *, backend: str | None = None
) -> torch.Tensor:
    """Layer norm over the channels of each pixel (NAFNet's LayerNorm2d). (B, C, H, W) -> same."""
    if _fused(x, backend, weight, bias):
        return _fused_norm(x, weight, bias, eps, tokens=False).view(x.shape)
    # the same formula (biased variance, eps inside the root), as one fused torch kernel over a
    # channels-last view instead of eight elementwise passes
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, eps)
    return y.permute(0, 3, 1, 2)


def token_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, *, backend: str | None = None
) -> torch.Tensor:
    """The feature map as row-major tokens, layer-normed over their channels: (B, C, H, W) -> (B, H*W, C),
    what ``nn.LayerNorm(C)`` gives on ``x.flatten(2).transpose(1, 2)``, without a transposed copy first."""
    if _fused(x, backend, weight, bias):
        return _fused_norm(x, weight, bias, eps, tokens=True)
    return F.layer_norm(x.flatten(2).transpose(1, 2), (x.shape[1],), weight, bias, eps)


def _fused_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, tokens: bool) -> torch.Tensor:
    k = scan_fused.kernels()
    b, c, h, w = x.shape
    flat = x.detach().contiguous().view(b, c, h * w)
    out = torch.empty(b, h * w, c) if tokens else torch.empty_like(flat)
    steps = 2048
    vec = scan_fused.vector
    args = (steps, flat.numpy(), vec(weight), vec(bias), float(eps), int(tokens), out.numpy())
    scan_fused.run_tasks(k.layer_norm_channels, b * -(-h * w // steps), *args)
    return out
