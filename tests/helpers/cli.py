"""Running `algnet deblur` in a child process, and the tiny seeded model the CLI tests share."""

from __future__ import annotations

import signal
import subprocess
import sys

from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.model.checkpoint import save_safetensors
from helpers.seeded_weights import seeded_state_dict

TINY = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=8)


def write_tiny_checkpoint(path):
    save_safetensors(seeded_state_dict(ALGNet(TINY).state_dict(), 9), path)
    return path


def run_deblur(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "algnet_cli", "deblur", *map(str, args)], capture_output=True, text=True, **kw
    )


def _default_sigint():
    # a shell running us in the background may have set SIGINT to "ignore", which children inherit
    # and Python then keeps: give the child the default so that Ctrl-C is a KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_deblur(*args) -> subprocess.Popen:
    """`algnet deblur ARGS` running in the background, stderr readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "algnet_cli", "deblur", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def write_identity_checkpoint(path):
    """The identity checkpoint: the tiny seeded ALGNet with ``ending`` zeroed returns its input
    exactly, so any difference between an input file and its output comes from reading or writing."""
    sd = seeded_state_dict(ALGNet(TINY).state_dict(), 9)
    sd["ending.weight"] = sd["ending.weight"] * 0
    sd["ending.bias"] = sd["ending.bias"] * 0
    save_safetensors(sd, path)
    return path


def run_cli(*args, input: str | None = None):
    """Run ``algnet ARGS`` in this process: (exit code, stdout, stderr). The same code as the console
    script, without a new interpreter (torch and the kernels are imported once per test session)."""
    from typer.testing import CliRunner

    from algnet_cli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr
