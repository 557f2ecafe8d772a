"""Running `algnet deblur` in a child process, and the tiny seeded model the CLI tests share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from algnet_cli.model import ALGNet, ALGNetConfig
from algnet_cli.model.checkpoint import save_safetensors
from helpers.seeded_weights import seeded_state_dict

TINY = ALGNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1), d_state=8)


def write_tiny_checkpoint(path, seed: int = 9):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(seeded_state_dict(ALGNet(TINY).state_dict(), seed), path)
    return path


def run_deblur(*args, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``algnet deblur ARGS`` in this process (see :func:`run_algnet`)."""
    return run_algnet("deblur", *args, env=env, cwd=cwd)


def run_deblur_process(*args, **kw) -> subprocess.CompletedProcess:
    """``algnet deblur ARGS`` in a child process: for what needs one (Ray's driver, signals, imports)."""
    return subprocess.run(
        [sys.executable, "-m", "algnet_cli", "deblur", *map(str, args)], capture_output=True, text=True, **kw
    )


@contextlib.contextmanager
def environment(env: dict | None = None, cwd=None):
    """Within the block, ``os.environ`` is exactly ``env`` (when given) and the working folder ``cwd``;
    both as they were afterwards."""
    from huggingface_hub import constants as hf

    saved, here = dict(os.environ), os.getcwd()
    hf_saved = {k: getattr(hf, k) for k in _HF_READ_AT_IMPORT}
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update({k: str(v) for k, v in env.items()})
            for k, default in _HF_READ_AT_IMPORT.items():  # what a new process would read at its import
                value = os.environ.get(k)
                setattr(hf, k, default if value is None else _hf_value(k, value))
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(here)
        for k, v in hf_saved.items():
            setattr(hf, k, v)


#: huggingface_hub settings it reads from the environment once, at import, and uses at call time
_HF_READ_AT_IMPORT = {"HF_HUB_DOWNLOAD_TIMEOUT": 10, "HF_HUB_ETAG_TIMEOUT": 10, "HF_HUB_OFFLINE": False}


def _hf_value(name: str, value: str):
    if name == "HF_HUB_OFFLINE":
        return value.strip().lower() in ("1", "on", "yes", "true")
    return int(value)


def run_algnet(*args, env: dict | None = None, cwd=None, input: str | None = None) -> subprocess.CompletedProcess:
    """``algnet ARGS`` in this process, as a finished process would report it: the exit code, stdout
    and stderr. ``env`` replaces the environment for the call (settings the code reads as it runs: the
    cache and config folders, ALGNET_*, HF_ENDPOINT, HF_HUB_OFFLINE); torch, the kernels and the model
    code are imported once per test session instead of once per command."""
    with environment(env, cwd):
        code, out, err = run_cli(*args, input=input)
    return subprocess.CompletedProcess(["algnet", *map(str, args)], code, out, err)


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

    result = CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False, prog_name="algnet")
    return result.exit_code, result.stdout, result.stderr


def hold_after(proc: subprocess.Popen, files: int) -> list[str]:
    """Read ``proc``'s stderr (a run started by :func:`start_deblur`, quiet off) until its progress says
    ``files`` files are done, then stop it there with SIGSTOP: the run is held at a known point, however
    fast the machine, until SIGCONT or SIGKILL. Returns the lines read."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(f"algnet: [{files}/"):
            proc.send_signal(signal.SIGSTOP)
            return lines
    raise AssertionError(f"the run ended before {files} files were done: {''.join(lines)}")
