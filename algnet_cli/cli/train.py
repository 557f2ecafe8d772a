"""``algnet train``: train or fine-tune an ALGNet, resumably, and export it with a model card."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .errors import handle_errors
from .logs import Verbose, configure
from .options import Quiet


@handle_errors
def train(
    out: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            "--out",
            metavar="DIR",
            help="Run folder: checkpoints (last.pt), the exported model and its card.",
        ),
    ],
    photos: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Folder of sharp photos, blurred synthetically on the fly.")
    ] = None,
    paired: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Folder of real pairs in the GoPro layout (blur/ and sharp/).")
    ] = None,
    val_photos: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Held-out sharp photos for validation PSNR.")
    ] = None,
    init: Annotated[
        Optional[str],
        typer.Option(
            metavar="MODEL",
            help="Model to fine-tune, as --model takes it: a registered name, hf://owner/repo/file or a "
            "checkpoint file (its configuration is kept).",
        ),  # fmt: skip
    ] = None,
    width: Annotated[int, typer.Option(metavar="N", help="Channels at full scale.")] = 16,
    blocks: Annotated[
        str,
        typer.Option(
            metavar="N,N,N,N,N,N,N,N,N", help="Blocks per stage: enc1,enc2,enc3,enc4,middle,dec1,dec2,dec3,dec4."
        ),
    ] = "1,1,1,1,1,1,1,1,1",
    d_state: Annotated[int, typer.Option(metavar="N", help="Mamba state size.")] = 16,
    steps: Annotated[int, typer.Option(metavar="N", help="Total iterations.", min=1)] = 1000,
    batch: Annotated[int, typer.Option(metavar="N", help="Pairs per iteration.", min=1)] = 4,
    patch: Annotated[int, typer.Option(metavar="PIXELS", help="Crop side (a multiple of 16).", min=32)] = 128,
    lr: Annotated[float, typer.Option(metavar="RATE", help="Peak learning rate (AdamW, cosine decay).")] = 1e-3,
    val_every: Annotated[int, typer.Option(metavar="N", help="Validate every N iterations.", min=1)] = 100,
    ckpt_every: Annotated[int, typer.Option(metavar="N", help="Save last.pt every N iterations.", min=1)] = 50,
    loader_processes: Annotated[
        int,
        typer.Option(metavar="N", help="Processes that prepare training pairs (0: in the training process).", min=0),
    ] = 0,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the data stream and initial weights.")] = 0,
    device: Annotated[str, typer.Option(metavar="<auto|cpu|cuda|cuda:N>", help="Where training runs.")] = "auto",
    name: Annotated[str, typer.Option(metavar="NAME", help="Stem of the exported files.")] = "model",
    max_minutes: Annotated[
        Optional[float],
        typer.Option(
            metavar="MINUTES", help="Stop after this much training time (the cosine decay then follows time)."
        ),
    ] = None,
    degradations: Annotated[
        Literal["classic", "real"],
        typer.Option(
            help="classic (motion up to 31 px, defocus) or real (motion up to 64 px, shake through defocus, "
            "highlights above white, higher ISO noise)."
        ),
    ] = "classic",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write into a -o folder that holds files algnet did not write.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train ALGNet on synthetic blur (--photos) or real pairs (--paired); rerun to resume.

    Every --ckpt-every iterations the full state goes to OUT/last.pt; the same command run again
    continues exactly where it stopped. At the end OUT/NAME.safetensors and a model card
    (NAME.card.json, NAME.card.md) are written.

    Examples:

      algnet train --photos photos/train --val-photos photos/val -o runs/small --steps 2000

      algnet train --paired GoPro/train --init ALGNet_GoPro.pth -o runs/ft --lr 1e-4 --steps 500
    """
    configure(quiet, verbose)
    from ..errors import UsageError
    from ..model import ALGNetConfig
    from ..train.loop import TrainConfig

    if (photos is None) == (paired is None):
        raise UsageError("give exactly one of --photos (synthetic blur) or --paired (GoPro layout)")
    if patch % 16:
        raise UsageError("--patch must be a multiple of 16")
    if degradations not in ("classic", "real"):
        raise UsageError("--degradations must be classic or real")
    import math

    if not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"--lr must be a number over 0, not {lr}")
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
        raise UsageError(
            f"--max-minutes must be a number of minutes over 0 (leave it out for no limit), not {max_minutes}"
        )
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise UsageError(f"--name {name!r}: a file name stem, without folders (the files go into -o)")
    longest = len(os.fsencode(f"{name}.card.json"))
    if longest > 255:
        raise UsageError(f"--name: {longest - 10} bytes; the files it names ({name[:20]}....card.json) would be over "
                         "the file system's 255-byte limit: choose a shorter name")  # fmt: skip
    try:
        n = [int(v) for v in blocks.split(",")]
        if len(n) != 9 or min(n) < 1:
            raise UsageError(
                f"--blocks {blocks!r}: nine whole numbers of 1 or more (4 encoder levels, the middle, 4 decoder "
                "levels), e.g. 1,1,1,28,1,1,1,1,1"
            )
        config = ALGNetConfig(
            width=width, enc_blk_nums=tuple(n[:4]), middle_blk_num=n[4], dec_blk_nums=tuple(n[5:9]), d_state=d_state
        )
    except (ValueError, IndexError) as e:
        raise UsageError(f"--blocks/--width: {e}") from None
    if init is not None:  # what --model takes: a registered name, an hf:// reference, a checkpoint file
        from ..hub import resolve

        init = str(resolve(init))
    cfg = TrainConfig(
        out=str(out),
        model=config.to_dict(),
        photos=str(photos) if photos else None,
        paired=str(paired) if paired else None,
        val_photos=str(val_photos) if val_photos else None,
        init=str(init) if init else None,
        patch=patch,
        batch=batch,
        steps=steps,
        lr=lr,
        val_every=val_every,
        ckpt_every=ckpt_every,
        seed=seed,
        workers=loader_processes,
        max_minutes=max_minutes,
        device=device,
        degradations=degradations,
    )
    with _run_folder(out, name, overwrite, photos, paired, val_photos, init):
        _train(cfg, steps, name, paired is not None, quiet)


def _run_folder(out: Path, name: str, overwrite: bool, photos, paired, val_photos, init):
    """Claim the run folder and its exports (never an input, never a folder algnet did not write
    unless --overwrite) and hold its lock: a second training into the same folder is refused."""
    from filelock import FileLock, Timeout

    from ..errors import UsageError
    from ..outputs import OutputGuard

    guard = OutputGuard(overwrite=overwrite)
    for role, folder in (("training photos", photos), ("training pairs", paired), ("validation photos", val_photos)):
        if folder is not None:
            guard.add_input(folder, role, walked=True)
    if init is not None:
        guard.add_input(init, "--init checkpoint")
    guard.claim_folder(out, "-o", markers=(LAST, f"{name}.card.json"))
    for suffix in (".safetensors", ".card.json", ".card.md"):
        guard.claim_file(out / f"{name}{suffix}", "-o", existing="keep")
    guard.claim_file(out / LAST, "-o", existing="keep")
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".algnet-train.lock"))
    try:
        return lock.acquire(timeout=0)  # released when the with-block ends
    except Timeout:
        raise UsageError(
            f"-o {out}: another training is writing to this folder; wait for it or choose another"
        ) from None


#: the training state a run folder holds (see algnet_cli.train.loop)
LAST = "last.pt"


def _train(cfg, steps: int, name: str, paired: bool, quiet: bool) -> None:
    from ..progress import Progress
    from ..train.loop import Trainer

    trainer = Trainer(cfg)  # every photo or pair is checked here, before step 1
    _announce_data(trainer.data, paired)
    if trainer.step:
        changed = f" with {', '.join(trainer.changes)}" if trainer.changes else ""
        _say(f"resuming at iteration {trainer.step}{changed}")
    with Progress(steps - trainer.step, "training", quiet=quiet, unit="it") as bar:

        def on_step(entry):
            label = f"loss {entry['loss']:.4f}"
            if "val_psnr" in entry:
                label += f" val {entry['val_psnr']:.2f} dB (input {entry['val_input_psnr']:.2f})"
            bar.advance(label)

        trainer.run(on_step)
    path = trainer.export(name)
    typer.echo(f"exported {path}")


def _say(text: str) -> None:
    """A line about the run, on stderr (not with -q)."""
    import logging

    logging.getLogger("algnet_cli.train").warning("%s", text)


def _announce_data(data, paired: bool) -> None:
    """Which photos (or pairs) were refused and why, the unmatched files, and how many are used."""
    for path, why in getattr(data, "refused", []):
        _say(f"skipped {path}: {why}")
    unmatched = getattr(data, "unmatched", [])
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        _say(f"{len(unmatched)} files without a partner in blur/ or sharp/ are not used: {shown}")
    kept = len(getattr(data, "photos", None) or getattr(data, "pairs", []))
    _say(f"training on {kept} {'pairs' if paired else 'photos'}")
