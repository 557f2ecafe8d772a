"""The training loop: multi-scale L1 + frequency loss, AdamW with cosine decay, exact resume, export."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, TrainingDiverged, UsageError
from ..fileio import atomic_write, atomic_write_text
from ..model import ALGNet, ALGNetConfig

#: the settings of a run that a resumed run may change (and whose change it reports)
RECIPE_KEYS = ("steps", "lr", "batch", "patch", "max_minutes", "degradations", "val_every", "ckpt_every")
#: what a resumed run may not change: its data and its seed (the card would describe the wrong run)
DATA_KEYS = ("photos", "paired", "seed")


def _same_source(a, b) -> bool:
    """The same setting: equal values, or folders that are the same folder."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        return Path(a).resolve() == Path(b).resolve()
    return False


def _finite(obj):
    """``obj`` with every non-finite float made None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _read_state(path: Path, device) -> dict:
    """A run's last.pt, or a CheckpointError naming it (never advice to unpickle code)."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (a run killed while saving?); remove it to start the run again")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch reports damage with many types; its advice is not ours
        raise CheckpointError(
            f"{path}: not a readable training checkpoint ({type(e).__name__}); remove it to start the run again"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not a training checkpoint of algnet train; remove it to start the run again")
    return state


def _remove_stale_temps(folder: Path) -> None:
    """Temporary files that killed runs left in the run folder."""
    from ..fileio import stale_temps

    for t in stale_temps([folder]):
        t.unlink(missing_ok=True)


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
        target = (
            sharp if out.shape[-1] == sharp.shape[-1] else F.adaptive_avg_pool2d(sharp, (out.shape[-2], out.shape[-1]))
        )
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
    assert photos is not None  # a run has --photos or --paired
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
        self._val: Any = None  # the validation pairs, made on first use
        self.history: list[dict] = []
        self.seconds = 0.0
        self.changes: list[str] = []  # what a resumed run changed of the recipe
        self.out.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(self.out)
        last = self.out / "last.pt"
        if last.exists():
            self._load(last)
        # every photo or pair is read and checked here, before step 1
        self.data = _dataset(self.cfg, self.cfg.seed, self.cfg.photos, self.cfg.steps * self.cfg.batch)

    # -- checkpoints ----------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "changes": json.dumps(self.changes),
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "history": json.dumps(self.history),
            "seconds": self.seconds,
            "config": json.dumps(asdict(self.cfg)),
        }

    def _load(self, path: Path) -> None:
        state = _read_state(path, self.device)
        saved = json.loads(state.get("config", "{}"))
        want, had = self.model.config.to_dict(), saved.get("model")
        if had is not None and ALGNetConfig.from_dict(had).to_dict() != want:
            differ = ", ".join(f"{k} {had.get(k)} (asked: {v})" for k, v in want.items() if had.get(k) != v)
            raise UsageError(
                f"{path}: this run folder holds a model of another configuration ({differ}); "
                "give the same options to resume, or another -o to start a new run"
            )
        data = [f"{k} {saved.get(k)} (asked: {getattr(self.cfg, k)})" for k in DATA_KEYS
                if k in saved and not _same_source(saved.get(k), getattr(self.cfg, k))]  # fmt: skip
        if data:
            raise UsageError(
                f"{path}: this run was trained with other data ({', '.join(data)}); a run resumes on the same "
                "photos or pairs and seed: give them again, or another -o to start a new run"
            )
        self.changes = json.loads(state.get("changes", "[]")) + [
            f"{k} {saved[k]} -> {v}"
            for k, v in asdict(self.cfg).items()
            if k in RECIPE_KEYS and k in saved and saved[k] != v
        ]
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        self.seconds = float(state["seconds"])

    def save(self) -> None:
        atomic_write(self.out / "last.pt", lambda p: torch.save(self._state(), p))

    def _state_changes(self) -> dict:
        return {"resumed_with_changes": self.changes} if self.changes else {}

    # -- training -----------------------------------------------------------------------------
    def batches(self):
        ds = self.data
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
        if not torch.isfinite(loss):  # before the update: the weights stay those of the last finite step
            raise TrainingDiverged(self.step + 1, float(loss), lr_at(self.step, self.cfg, self.seconds))
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

    def out_of_time(self) -> bool:
        limit = self.cfg.max_minutes
        return bool(limit) and limit is not None and self.seconds >= 60 * limit

    def run(self, on_step=None) -> None:
        """Train to ``cfg.steps`` (or the time budget). A non-finite loss raises TrainingDiverged;
        last.pt then holds the last checkpoint saved before it, all finite."""
        if self.out_of_time():  # a finished time-limited run, run again: nothing more to train
            return
        start = time.perf_counter()
        t_saved = self.seconds
        for blurred, sharp in self.batches():
            loss = self.train_step(blurred, sharp)
            self.seconds = t_saved + time.perf_counter() - start
            entry = {"step": self.step, "loss": loss}
            if self.step % self.cfg.val_every == 0 or self.step == self.cfg.steps:
                entry.update(self.validate())
            out_of_time = self.out_of_time()
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

        bad = [k for k, v in self.model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise TrainingDiverged(
                self.step, float("nan"), 0.0, f"{len(bad)} tensors hold NaN or Inf; nothing exported"
            )
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
                "blur": (
                    "real pairs (blurred and sharp photos of the same scenes)"
                    if self.cfg.paired
                    else "synthetic: camera-shake trajectories, lines, defocus disks, Gaussians, identity; "
                    "linear light; Poisson-Gaussian noise; 8-bit; JPEG on 30% of inputs"
                ),
            },
            **self._state_changes(),
            "recipe": {
                k: v for k, v in asdict(self.cfg).items() if k not in ("out", "model", "photos", "paired", "val_photos")
            },
            "iterations": self.step,
            "wall_time_s": round(self.seconds, 1),
            "machine": f"{platform.machine()}, {torch.cuda.get_device_name(self.device) if self.device.type == 'cuda' else platform.processor() or 'CPU'}",
            "validation": vals[-1] if vals else None,
        }
        atomic_write_text(self.out / f"{name}.card.json", json.dumps(_finite(card), indent=2, allow_nan=False))
        md = [
            f"# {name}",
            "",
            f"ALGNet ({cfg.describe()}), {card['parameters']:,} parameters.",
            "",
            f"- Trained {self.step} iterations in {card['wall_time_s']} s on {card['machine']}.",
            f"- Data: {card['data']['blur']}.",
            f"- Recipe: `{json.dumps(card['recipe'])}`.",
        ]
        if card["validation"]:
            v = card["validation"]
            md.append(
                f"- Validation PSNR {v['val_psnr']:.2f} dB (blurred input {v['val_input_psnr']:.2f} dB) at step {v['step']}."
            )
        atomic_write_text(self.out / f"{name}.card.md", "\n".join(md) + "\n")
        return path
