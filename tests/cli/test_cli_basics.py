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
