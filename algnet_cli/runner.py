"""Tensor in, tensor out: device, precision, padding and the model call.

The runner owns every device decision: nothing else in the package moves tensors to a GPU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from .errors import NonFiniteOutputError, UsageError
from .model import ALGNet
from .tiling import BYTES_PER_PIXEL_PER_WIDTH, CPU_BUDGET_GB, forward_bytes, tile_weight, tiles_2d

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_log = logging.getLogger("algnet_cli.runner")


@dataclass(frozen=True)
class RunOptions:
    """How to run the model. Built once, at the edge (CLI or API)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool = True  # on CUDA only
    tile: int | None = None  # None: auto (whole image when it fits the budget), 0: whole, N: N x N tiles
    tile_overlap: int = 32
    max_memory_gb: float | None = (
        None  # memory budget for one image; None: 80% of free GPU memory, 3 GiB on CPU (the forward pass; image buffers come on top)
    )
    strength: float = 1.0  # output = input + strength * (restored - input); 1: the model's output as it is


@dataclass
class RunReport:
    """What the runner carried out for one call: the plan as run, not as predicted.

    tile: the tile side planned (0: the whole image at once). tiles: tiles that ran (0: the whole
    image), those of out-of-memory splits included. oom_splits: times a whole image or tile ran out
    of memory and was split. fp32_fallbacks: half-precision results recomputed in fp32.
    """

    tile: int = 0
    tiles: int = 0
    oom_splits: int = 0
    fp32_fallbacks: int = 0

    def add(self, other: RunReport) -> RunReport:
        self.tile = self.tile or other.tile
        self.tiles += other.tiles
        self.oom_splits += other.oom_splits
        self.fp32_fallbacks += other.fp32_fallbacks
        return self

    def to_dict(self) -> dict:
        d = {"tiles": self.tiles, "oom_splits": self.oom_splits, "fp32_fallbacks": self.fp32_fallbacks}
        return {k: v for k, v in d.items() if v or k == "tiles"}


MIN_TILE = 64


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU (see `algnet doctor`)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise UsageError(f"device type {device.type!r} is not supported; use cpu or cuda")
    return device


def pick_precision(name: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 on GPUs that support it, fp32 elsewhere (CPU autocast is rarely faster)."""
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is not supported on the CPU; use fp32 or bf16")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


class Runner:
    """Runs an ALGNet on image batches.

    ``runner(images)``: (B, C, H, W) float in [0, 1], any device -> (B, C, H, W) float32 on the
    runner's device, unclamped. Convolutions run under autocast in the chosen precision; the
    selective scan and its norms always run in float32. A non-finite half-precision result is
    recomputed in float32 and counted in ``fallbacks``.
    """

    def __init__(self, model: ALGNet, options: RunOptions = RunOptions()):
        self.options = options
        self.device = pick_device(options.device)
        self.dtype = pick_precision(options.precision, self.device)
        self.channels_last = options.channels_last and self.device.type == "cuda"
        model = model.to(self.device).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it
        self.model = model
        self.totals = RunReport()  # everything this runner has carried out

    @property
    def precision_name(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def _forward(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        h, w = x.shape[-2:]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            return self.model(x)[-1][..., :h, :w].float()

    # -- memory and tiles ------------------------------------------------------------------
    def budget_bytes(self) -> float:
        if self.options.max_memory_gb is not None:
            return self.options.max_memory_gb * 2**30
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return 0.8 * free
        return CPU_BUDGET_GB * 2**30

    def estimate_bytes(self, height: int, width: int, batch: int = 1) -> float:
        """Rough peak memory of one whole-image forward."""
        return forward_bytes(height, width, self.model.config.width, self.model.config.multiple, batch)

    def plan_tile(self, height: int, width: int) -> int:
        """0 (whole image) or the tile side to use for an image of this size."""
        if self.options.tile is not None:
            return self.options.tile
        budget = self.budget_bytes()
        if self.estimate_bytes(height, width) <= budget:
            return 0
        side = int(math.sqrt(budget / (self.model.config.width * BYTES_PER_PIXEL_PER_WIDTH)))
        return max(MIN_TILE, side - side % 16)

    def batch_size(self, height: int, width: int, limit: int = 8) -> int:
        """Same-size images to run in one forward: 1 on the CPU (no gain there) or when tiles are
        needed; on a GPU the most that fit the memory budget, up to ``limit``."""
        if self.device.type == "cpu" or self.plan_tile(height, width):
            return 1
        fits = int(self.budget_bytes() // self.estimate_bytes(height, width))  # the estimate grows with the batch
        return max(1, min(limit, fits))

    def _overlap(self, tile: int) -> int:
        return min(self.options.tile_overlap, tile // 2)

    def tile_count(self, height: int, width: int) -> int:
        """How many tiles :meth:`restore` will cut an image of this size into (0: whole image)."""
        tile = self.plan_tile(height, width)
        if not tile or (tile >= height and tile >= width):
            return 0
        return len(tiles_2d(height, width, tile, self._overlap(tile)))

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        """Whole or tiled as planned; (B, C, H, W) in [0, 1] -> (B, C, H, W) float32 on the CPU, unclamped."""
        return self.run(images)[0]

    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, RunReport]:
        """:meth:`restore`, with the report of what was carried out (tiles, splits, fallbacks)."""
        h, w = images.shape[-2:]
        tile = self.plan_tile(h, w)
        report = RunReport(tile=tile if tile and (tile < h or tile < w) else 0)
        if report.tile:
            out = self._tiled(images, tile, report)
        else:
            try:
                out = self._call(images, report).cpu()
            except _OOM_ERRORS as e:
                if not _is_oom(e):
                    raise
                self._free()
                report.oom_splits += 1
                out = self._tiled(images, max(MIN_TILE, (max(h, w) // 2) // 16 * 16), report)
        self.totals.add(report)
        s = self.options.strength
        if s != 1.0:  # per pixel, before any rounding: 0 gives the input back exactly
            x = images.detach().to("cpu", torch.float32)
            out = x + s * (out.clamp(0, 1) - x)  # halfway to what S = 1 writes (the output is clamped)
        return out, report

    def _tiled(self, images: torch.Tensor, tile: int, report: RunReport) -> torch.Tensor:
        b, c, h, w = images.shape
        overlap = self._overlap(tile)
        out = torch.zeros(b, c, h, w)
        weight_sum = torch.zeros(h, w)
        for top, left, th, tw in tiles_2d(h, w, tile, overlap):
            part = images[..., top : top + th, left : left + tw]
            try:
                y = self._call(part, report).cpu()
                report.tiles += 1
            except _OOM_ERRORS as e:
                if not _is_oom(e) or tile <= MIN_TILE:
                    raise
                self._free()
                report.oom_splits += 1
                _log.warning("out of memory on a %dx%d tile; splitting it", tw, th)
                y = self._tiled(part, max(MIN_TILE, (tile // 2) // 16 * 16), report)
            wgt = torch.from_numpy(tile_weight(top, left, th, tw, h, w, overlap))
            out[..., top : top + th, left : left + tw] += y * wgt
            weight_sum[top : top + th, left : left + tw] += wgt
        return out / weight_sum

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One forward of the whole batch: (B, C, H, W) in [0, 1] -> float32 on the runner's device."""
        return self._call(images, self.totals)

    def _call(self, images: torch.Tensor, report: RunReport) -> torch.Tensor:
        if self.device.type == "cuda" and not images.is_cuda:
            images = images.float().pin_memory()  # page-locked, so the copy below is a fast DMA
        x = images.to(self.device, dtype=torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._forward(x, self.dtype)
        if not torch.isfinite(out).all():
            if self.dtype != torch.float32:
                _log.warning("non-finite %s output; recomputed in fp32", self.precision_name)
                report.fp32_fallbacks += 1
                out = self._forward(x, torch.float32)
            if not torch.isfinite(out).all():
                raise NonFiniteOutputError("the model's output holds NaN or Inf values, even in fp32")
        return out


_OOM_ERRORS = (torch.OutOfMemoryError, RuntimeError, MemoryError)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
