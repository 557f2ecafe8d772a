"""The command line starts instantly: --help and --version never import torch."""

import os
import subprocess
import sys

from algnet_cli import __version__

PROBE = """
import sys
from typer.testing import CliRunner
from algnet_cli.cli import app
r = CliRunner().invoke(app, sys.argv[1:])
print(r.output)
print("TORCH_IMPORTED" if "torch" in sys.modules else "TORCH_NOT_IMPORTED")
"""


def test_help_and_version_do_not_import_torch():
    for args in (["--help"], ["--version"], ["doctor", "--help"]):
        out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True).stdout
        assert "TORCH_NOT_IMPORTED" in out, args
    out = subprocess.run([sys.executable, "-c", PROBE, "--version"], capture_output=True, text=True).stdout
    assert f"algnet-cli {__version__}" in out


def test_doctor_reports_backends(tmp_path):
    env = dict(os.environ, ALGNET_KERNEL_CACHE=str(tmp_path / "kernels"), ALGNET_PREFAULT="0")
    out = subprocess.run(
        [sys.executable, "-m", "algnet_cli", "doctor"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "scan on cpu  auto -> fused" in out
    # the CPU's native bf16, as /proc/cpuinfo lists it, and what auto picks on it
    flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    assert (f"native bf16 ({', '.join(native)})" if native else "no native bf16") in out
    assert "cpu precision auto -> fp32" in out
    assert "first forward's memory faulted in during start-up: no (ALGNET_PREFAULT=0)" in out
    assert "triton scan  chunked (2048-step chunks) from 8192 steps" in out  # which Triton kernel runs where
    assert f"not compiled yet, cache {tmp_path / 'kernels'}; the first CPU run compiles it" in out
    assert "torch" in out
    import av

    assert f"video        PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}; encoders: h264," in out


COMMANDS = (["deblur"], ["score"], ["triage"], ["train"], ["doctor"], ["models", "list"], ["models", "info"],
            ["models", "pull"], ["models", "import"], ["models", "rm"])  # fmt: skip


def test_help_lists_choices_and_names_no_python_types():
    from helpers.cli import run_cli

    helps = {}
    for cmd in COMMANDS:
        code, out, _ = run_cli(*cmd, "--help")
        assert code == 0
        options = out.split("Options:", 1)[1]
        for bad in ("<str>", "<int", "<float", "<path>", "<dir>", "<bool>"):
            assert bad not in options, (cmd, bad)
        helps[" ".join(cmd)] = " ".join(out.split())
    deblur = helps["deblur"]
    for choice in ("<auto|fp32|bf16|fp16>", "<auto|fused|chunked|triton|mamba|reference>",
                   "<keep|png|jpg|tif|webp|bmp>", "<spread|blurriest>", "<mp4|mkv|mov|webm|avi>"):  # fmt: skip
        assert choice in deblur, choice
    assert "<basicsr|gopro|realblur>" in helps["score"] and "<classic|real>" in helps["train"]
    assert "env var: ALGNET_SCAN" in deblur and "env var: ALGNET_CACHE_DIR" in deblur
    # one meaning per option: what each count counts is in its name
    assert "--cluster-workers" in deblur and "--threads" in helps["score"] and "--loader-processes" in helps["train"]
    assert not any("--workers" in h for h in helps.values())


def test_a_value_outside_the_choices_is_a_usage_error_naming_them(tmp_path):
    from helpers.cli import run_cli

    code, _, err = run_cli("deblur", "x.png", "-o", "out/", "--precision", "fp64")
    assert code == 2 and "'fp64' is not one of 'auto', 'fp32', 'bf16', 'fp16'" in err
    code, _, err = run_cli("score", tmp_path, tmp_path, "--protocol", "psnr")
    assert code == 2 and "'psnr' is not one of 'basicsr', 'gopro', 'realblur'" in err


def test_shell_completion_is_offered():
    from helpers.cli import run_cli

    code, out, _ = run_cli("--help")
    assert code == 0 and "--install-completion" in out and "--show-completion" in out
