"""``algnet info``: what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import handle_errors


@handle_errors
def info(
    checkpoint: Annotated[Path, typer.Argument(help="A .safetensors or .pth ALGNet checkpoint.")],
) -> None:
    """Show the configuration inferred from a checkpoint, its parameter count and sha256.

    Example:

      algnet info ALGNet_GoPro.pth
    """
    from ..fileio import sha256_file
    from ..model.checkpoint import infer_config, read_checkpoint

    sd = read_checkpoint(checkpoint)
    config = infer_config(sd, str(checkpoint))
    typer.echo(f"file         {checkpoint}")
    typer.echo(f"sha256       {sha256_file(checkpoint)}")
    typer.echo(f"config       {config.describe()}")
    typer.echo(f"tensors      {len(sd)}")
    typer.echo(f"parameters   {sum(v.numel() for v in sd.values()):,}")
