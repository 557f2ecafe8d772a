"""The training loop: multi-scale L1 + frequency loss, AdamW with cosine decay, exact resume, export."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..fileio import atomic_write, atomic_write_text
from ..model import ALGNet, ALGNetConfig


@dataclass(frozen=True)
class TrainConfig:
    out: str
    model: dict = field(
        default_factory=lambda: ALGNetConfig(
            width=16, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=16
        ).to_dict()
    )
    photos: str | None = None  # folder of sharp photos for synthetic blur
    paired: str | None = None  # GoPro-layout folder of real pairs
    val_photos: str | None = None
    init: str | None = None  # checkpoint to fine-tune
    patch: int = 128
    batch: int = 4
    steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup: int = 50
    weight_decay: float = 1e-4
    fft_weight: float = 0.1
    val_every: int = 100
    val_pairs: int = 16
    ckpt_every: int = 50
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    max_minutes: float | None = None  # stop (save, export) after this much training time; the cosine follows time
    degradations: str = (
        "classic"  # classic: motion <= 31 px, defocus; real: motion <= 64 px, shake + defocus, highlights, ISO
    )


def multiscale_loss(outs: list[torch.Tensor], sharp: torch.Tensor, fft_weight: float) -> torch.Tensor:
    """L1 at every output scale (targets area-downscaled) plus L1 between their 2-D spectra."""
    total = sharp.new_zeros(())
    for out in outs:
        target = sharp if out.shape[-1] == sharp.shape[-1] else F.adaptive_avg_pool2d(sharp, out.shape[-2:])
        total = total + F.l1_loss(out, target)
        if fft_weight:
            diff = torch.fft.rfft2(out.float()) - torch.fft.rfft2(target.float())
            total = total + fft_weight * diff.abs().mean()
    return total


def lr_at(step: int, cfg: TrainConfig, seconds: float = 0.0) -> float:
    """Linear warm-up, then cosine decay over the steps (or over the time budget, if one is set and is shorter)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes:
        t = max(t, seconds / (60 * cfg.max_minutes))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def _dataset(cfg: TrainConfig, seed: int, photos: str | None, length: int):
    from .datasets import PairedFolder, SyntheticPairs

    if cfg.paired and photos is cfg.photos:
        return PairedFolder(Path(cfg.paired), cfg.patch, length, seed)
    if cfg.degradations == "real":
        from .kernels import REAL_MIX

        return SyntheticPairs(Path(photos), cfg.patch, length, seed, max_kernel=67, mix=REAL_MIX, realistic=True)
    return SyntheticPairs(Path(photos), cfg.patch, length, seed)


def psnr_batch(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp_min(1e-12))).mean())


class Trainer:
    """Holds the model, optimiser and step; ``run()`` trains to ``cfg.steps``, resuming from out/last.pt."""

    def __init__(self, cfg: TrainConfig):
        from ..model.checkpoint import load_checkpoint
        from ..runner import pick_device

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda":  # TF32 matmuls and convolutions: plenty for training, much faster
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(cfg.seed)
        self.model = load_checkpoint(cfg.init) if cfg.init else ALGNet(ALGNetConfig.from_dict(cfg.model))
        self.model.to(self.device).train()
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1]
        other = [p for n, p in self.model.named_parameters() if p.ndim <= 1]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.9),
        )
        self.step = 0
        self._val = None
        self.history: list[dict] = []
        self.seconds = 0.0
        last = self.out / "last.pt"
        if last.exists():
            self._load(last)

    # -- checkpoints ----------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "history": json.dumps(self.history),
            "seconds": self.seconds,
            "config": json.dumps(asdict(self.cfg)),
        }

    def _load(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        self.seconds = float(state["seconds"])

    def save(self) -> None:
        atomic_write(self.out / "last.pt", lambda p: torch.save(self._state(), p))

    # -- training -----------------------------------------------------------------------------
    def batches(self):
        ds = _dataset(self.cfg, self.cfg.seed, self.cfg.photos, self.cfg.steps * self.cfg.batch)
        sampler = range(self.step * self.cfg.batch, self.cfg.steps * self.cfg.batch)
        return torch.utils.data.DataLoader(
            ds,
            batch_size=self.cfg.batch,
            sampler=sampler,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_step(self, blurred: torch.Tensor, sharp: torch.Tensor) -> float:
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg, self.seconds)
        blurred = blurred.to(self.device, non_blocking=True)
        sharp = sharp.to(self.device, non_blocking=True)
        loss = multiscale_loss(self.model(blurred), sharp, self.cfg.fft_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> dict:
        if self._val is None:  # the same fixed pairs at every validation
            photos = self.cfg.val_photos or self.cfg.photos
            self._val = _dataset(self.cfg, 10**6 + self.cfg.seed, photos, self.cfg.val_pairs)
        ds = self._val
        self.model.eval()
        got, base = [], []
        for i in range(len(ds)):
            b, s = ds[i]
            out = self.model(b[None].to(self.device))[-1].cpu()
            got.append(psnr_batch(out, s[None]))
            base.append(psnr_batch(b[None], s[None]))
        self.model.train()
        return {"step": self.step, "val_psnr": sum(got) / len(got), "val_input_psnr": sum(base) / len(base)}

    def run(self, on_step=None) -> None:
        start = time.perf_counter()
        t_saved = self.seconds
        for blurred, sharp in self.batches():
            loss = self.train_step(blurred, sharp)
            self.seconds = t_saved + time.perf_counter() - start
            entry = {"step": self.step, "loss": loss}
            if self.step % self.cfg.val_every == 0 or self.step == self.cfg.steps:
                entry.update(self.validate())
            out_of_time = bool(self.cfg.max_minutes) and self.seconds >= 60 * self.cfg.max_minutes
            if out_of_time and "val_psnr" not in entry:
                entry.update(self.validate())
            self.history.append(entry)
            if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps or out_of_time:
                self.save()
            on_step and on_step(entry)
            if out_of_time:
                break

    # -- export -------------------------------------------------------------------------------
    def export(self, name: str = "model") -> Path:
        from ..fileio import sha256_file
        from ..model.checkpoint import save_safetensors

        path = self.out / f"{name}.safetensors"
        cfg = self.model.config
        atomic_write(path, lambda p: save_safetensors(self.model, p, metadata={"config": json.dumps(cfg.to_dict())}))
        vals = [h for h in self.history if "val_psnr" in h]
        card = {
            "name": name,
            "architecture": "ALGNet",
            "config": cfg.to_dict(),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "sha256": sha256_file(path),
            "data": {
                "photos": self.cfg.photos,
                "paired": self.cfg.paired,
                "val_photos": self.cfg.val_photos,
                "synthetic_blur": "camera-shake trajectories, lines, defocus disks, Gaussians, identity; linear light; "
                "Poisson-Gaussian noise; 8-bit; JPEG on 30% of inputs",
            },
            "recipe": {
                k: v for k, v in asdict(self.cfg).items() if k not in ("out", "model", "photos", "paired", "val_photos")
            },
            "iterations": self.step,
            "wall_time_s": round(self.seconds, 1),
            "machine": f"{platform.machine()}, {torch.cuda.get_device_name(self.device) if self.device.type == 'cuda' else platform.processor() or 'CPU'}",
            "validation": vals[-1] if vals else None,
        }
        atomic_write_text(self.out / f"{name}.card.json", json.dumps(card, indent=2))
        md = [
            f"# {name}",
            "",
            f"ALGNet ({cfg.describe()}), {card['parameters']:,} parameters.",
            "",
            f"- Trained {self.step} iterations in {card['wall_time_s']} s on {card['machine']}.",
            f"- Data: {card['data']['synthetic_blur']}.",
            f"- Recipe: `{json.dumps(card['recipe'])}`.",
        ]
        if card["validation"]:
            v = card["validation"]
            md.append(
                f"- Validation PSNR {v['val_psnr']:.2f} dB (blurred input {v['val_input_psnr']:.2f} dB) at step {v['step']}."
            )
        atomic_write_text(self.out / f"{name}.card.md", "\n".join(md) + "\n")
        return path
