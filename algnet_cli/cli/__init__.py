"""The ``algnet`` command line. Commands import torch only when they run, so ``--help`` is instant."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__
from .deblur import deblur
from .doctor import doctor
from .models import app as models_app
from .score import score
from .train import train
from .triage import triage

app = typer.Typer(
    name="algnet",
    help="Deblur photos and video frames with ALGNet (Gao & Dang, ACM MM 2024).\n\n"
    "Examples:\n\n"
    "  algnet deblur photos/ -o sharp/ --model ALGNet_GoPro.pth\n\n"
    "  algnet triage photos/\n\n"
    "  algnet doctor\n\n"
    "  algnet models import ALGNet_GoPro.pth --name gopro\n\n"
    "  algnet score restored/ ground_truth/ --markdown scores.md",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"algnet-cli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Deblur photos and video frames with ALGNet."""
    from .logs import configure

    _process_settings()
    configure()  # each command sets its own level (-q, -v) as it starts


def _process_settings() -> None:
    """What the command sets for its own process (the library leaves a caller's process as it was):
    no Hub telemetry, the Hub's read timeout, and glibc keeping freed blocks for reuse (a CPU forward
    frees and reallocates 100-250 MB blocks dozens of times; see :mod:`algnet_cli.cpu`)."""
    import os

    from ..cpu import keep_freed_memory
    from ..hub import READ_TIMEOUT_S

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(READ_TIMEOUT_S)))
    keep_freed_memory()


app.command(help=deblur.__doc__)(deblur)
app.command(help=doctor.__doc__)(doctor)
app.add_typer(models_app)
app.command(help=score.__doc__)(score)
app.command(help=train.__doc__)(train)
app.command(help=triage.__doc__)(triage)
