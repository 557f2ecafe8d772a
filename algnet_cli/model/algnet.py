"""The ALGNet U-Net: multi-scale inputs, ALGBlocks at four levels, multi-scale outputs."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import FAM, SFE, ALGBlock, LayerNorm2d, LocalPool
from .config import ALGNetConfig, ModelDescriptor


class ALGNet(nn.Module):
    """ALGNet (Gao & Dang, ACM MM 2024) with the official parameter layout.

    forward: (B, C, H, W) float, images in [0, 1] -> list of four tensors, the restored image at
    1/8, 1/4, 1/2 and full scale of the input zero-padded (right/bottom) to a multiple of 16, as
    the official forward returns them. The full-scale result is the last element; crop it to
    (H, W) yourself, or use :func:`algnet_cli.model.restore`.
    """

    #: what the model is as loaded (set by :func:`~algnet_cli.model.load.load_model`; None otherwise)
    descriptor: ModelDescriptor | None = None

    def __init__(self, config: ALGNetConfig = ALGNetConfig()):
        super().__init__()
        self.config = config
        w, ic = config.width, config.img_channel
        self.intro = nn.Conv2d(ic, w, 3, padding=1)
        self.ending = nn.Conv2d(w, ic, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()  # registered here so the state dict keeps upstream's order
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = w
        for num in config.enc_blk_nums:
            self.encoders.append(nn.Sequential(*[ALGBlock(chan, config) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[ALGBlock(chan, config) for _ in range(config.middle_blk_num)])
        for num in config.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[ALGBlock(chan, config) for _ in range(num)]))
        self.SFE2 = SFE(2 * w, ic)
        self.SFE4 = SFE(4 * w, ic)
        self.SFE8 = SFE(8 * w, ic)
        self.FAM2 = FAM(2 * w)
        self.FAM4 = FAM(4 * w)
        self.FAM8 = FAM(8 * w)
        self.Convs = nn.ModuleList([nn.Conv2d(2 * c, c, 1) for c in (8 * w, 4 * w, 2 * w, w)])
        self.ConvsOut = nn.ModuleList([nn.Conv2d(c, ic, 3, padding=1) for c in (8 * w, 4 * w, 2 * w)])
        self.tlc_train_size: tuple[int, int] | None = None
        self.scan_backend: str | None = None  # as last set by set_scan_backend (None: the dispatcher's default)

    # -- runtime switches -------------------------------------------------------------------
    def set_tlc(self, train_size: int | tuple[int, int] | None = 256) -> ALGNet:
        """Switch the test-time local converter on (for a training crop size) or off (None).

        As upstream, each local pool gets a box of 1.5x the feature size that a training crop
        has at its level: for 256, 384 / 192 / 96 / 48 / 24 from full scale to the middle.
        """
        if train_size is None:
            kernels: list[tuple[int, int] | None] = [None] * 5
            self.tlc_train_size = None
        else:
            th, tw = (train_size, train_size) if isinstance(train_size, int) else train_size
            m = self.config.multiple
            ph, pw = -(-th // m) * m, -(-tw // m) * m  # the training crop, padded like any input
            kernels = [((ph >> lv) * int(th * 1.5) // th, (pw >> lv) * int(tw * 1.5) // tw) for lv in range(5)]
            self.tlc_train_size = (th, tw)
        for level, stage in self._stages_by_level():
            for block in stage:
                block.l_layer.ap.kernel = kernels[level]
        return self

    def set_scan_backend(self, backend: str | None) -> ALGNet:
        """Choose the selective-scan backend of every block (None: the dispatcher's default); the
        block's glue uses its fused CPU kernels with the fused scan."""
        from .mamba import Mamba

        for module in self.modules():
            if isinstance(module, (Mamba, ALGBlock, LayerNorm2d, LocalPool)):
                module.scan_backend = backend
        self.scan_backend = backend
        return self

    def _stages_by_level(self):
        for lv, stage in enumerate(self.encoders):
            yield lv, stage
        yield 4, self.middle_blks
        for i, stage in enumerate(self.decoders):
            yield 3 - i, stage

    def local_pools(self) -> list[LocalPool]:
        return [m for m in self.modules() if isinstance(m, LocalPool)]

    # -- forward --------------------------------------------------------------------------------
    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad right and bottom to a multiple of 16. (B, C, H, W) -> (B, C, H', W')."""
        m = self.config.multiple
        h, w = x.shape[-2:]
        return F.pad(x, (0, (-w) % m, 0, (-h) % m))

    def forward(self, inp: torch.Tensor) -> list[torch.Tensor]:
        inp = self.pad_input(inp)
        x_2 = F.interpolate(inp, scale_factor=0.5)  # nearest, as upstream
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        x_8 = F.interpolate(x_4, scale_factor=0.5)
        side = {1: (self.FAM2, self.SFE2(x_2)), 2: (self.FAM4, self.SFE4(x_4)), 3: (self.FAM8, self.SFE8(x_8))}

        x = self.intro(inp)
        skips = []
        for level, (encoder, down) in enumerate(zip(self.encoders, self.downs), start=1):
            x = encoder(x)
            skips.append(x)
            x = down(x)
            if level in side:
                fam, z = side[level]
                x = fam(x, z)
        x = self.middle_blks(x)
        decs = []
        for decoder, up, conv, skip in zip(self.decoders, self.ups, self.Convs, reversed(skips)):
            x = decoder(conv(torch.cat([up(x), skip], dim=1)))
            decs.append(x)
        outs = [head(d) + xs for head, d, xs in zip(self.ConvsOut, decs, (x_8, x_4, x_2))]
        outs.append(self.ending(x) + inp)
        return outs


def restore(model: ALGNet, image: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
    """Run the network on (B, C, H, W) images in [0, 1] and return the full-scale result cropped to (H, W):
    the padding to a multiple of 16 is done inside the forward, as the official code does, and cut away.

    Same device and dtype as the model's output; values are not clamped. Under ``torch.inference_mode``
    unless ``grad`` (training through it). The one restore of the package: ``algnet_cli.restore`` is this.
    """
    h, w = image.shape[-2:]
    with torch.inference_mode(not grad):
        return model(image)[-1][..., :h, :w]
