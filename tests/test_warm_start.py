"""The first image as fast as the rest: its forward's memory faulted in while torch and the model load."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import write_tiny_checkpoint

from algnet_cli.batch import OutputOptions, Request, plan
from algnet_cli.batch.warm import first_forward_bytes, model_shape
from algnet_cli.images import write_image
from algnet_cli.tiling import CPU_BUDGET_GB, forward_bytes

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# faults taken by filling a fresh 256 MiB tensor, after prefaulting a given amount (or nothing) first
_FAULTS = """
import resource, sys, torch
from algnet_cli.cpu import prefault
ask = float(sys.argv[1])
if ask:
    t = prefault(ask)
    if t is None:  # this libc refused the allocator setting that prefaulting relies on
        print("unsupported")
        sys.exit(0)
    t.join()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.empty(256 << 20, dtype=torch.uint8)
x.fill_(1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(ask: float, **env) -> int:
    r = subprocess.run(
        [sys.executable, "-c", _FAULTS, str(ask)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert r.returncode == 0, r.stderr
    if r.stdout.split()[-1] == "unsupported":
        pytest.skip("glibc here refuses the raised mmap threshold")
    return int(r.stdout.split()[-1])


@pytest.mark.slow
@glibc
def test_prefaulted_memory_is_reused_without_faulting_its_pages_again():
    pages = (256 << 20) // 4096
    cold = _faults(0)
    warm = _faults(512 << 20)
    assert cold > 0.9 * pages  # a fresh tensor faults every page in
    assert warm < 0.05 * pages  # the same tensor in prefaulted heap: next to none
    # and it can be turned off, alone or with the allocator setting it relies on
    for env in ({"ALGNET_PREFAULT": "0"}, {"ALGNET_MALLOC_TUNING": "0"}):
        code = "from algnet_cli.cpu import prefault; print(prefault(1 << 30))"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
        assert r.stdout.split() == ["None"], r.stderr


def _plan(folder, out):
    return plan(Request((str(folder),), output=OutputOptions(output=out, folder=True)))


def test_the_first_forward_is_sized_from_the_header_and_the_models_shape(tmp_path):
    """The estimate made before torch is imported is the runner's own, for the embedded model and for a
    checkpoint file: the shape read from the registry or the safetensors header is the loaded model's."""
    from algnet_cli.api import Deblurrer

    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", np.zeros((720, 1280, 3), np.uint8))
    write_image(folder / "b.png", np.zeros((64, 64, 3), np.uint8))
    job = _plan(folder, tmp_path / "out")
    tiny = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    for model in ("default", str(tiny)):
        runner = Deblurrer(model, device="cpu", tlc=False).runner
        assert model_shape(model) == (runner.model.config.width, runner.model.config.multiple)
        assert first_forward_bytes(job, model) == pytest.approx(runner.estimate_bytes(720, 1280))
        assert first_forward_bytes(job, model, tile=256) == pytest.approx(runner.estimate_bytes(256, 256))
    assert first_forward_bytes(job, "default", max_memory_gb=0.5) == 0.5 * 2**30  # the budget caps it
    big = forward_bytes(6000, 8000, 16)
    assert big > CPU_BUDGET_GB * 2**30
    # nothing known cheaply: no estimate (the run goes on as before)
    assert first_forward_bytes(job, "no-such-model") == 0
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    assert first_forward_bytes(job, str(tmp_path / "bad.safetensors")) == 0
    over = plan(Request((str(folder),), output=OutputOptions(output=tmp_path / "o3", folder=True, max_pixels=10**5)))
    assert first_forward_bytes(over, "default") == 0  # an image over the decoding limit will be refused: no estimate
    (folder / "a.png").write_bytes(b"not a png")
    assert first_forward_bytes(_plan(folder, tmp_path / "out2"), "default") == 0  # the first image unreadable


def test_the_quick_start_reproduces_the_committed_examples(tmp_path):
    """README's quick start, `algnet deblur examples/blurred -o out/` with the embedded model: on the CPU
    `auto` is fp32, so the committed outputs come back byte for byte on the kind of machine that made them
    (the CPU model and torch build below), and within rounding elsewhere (oneDNN's blocking, and so the
    order of its sums, depends on the CPU)."""
    import torch
    from helpers.cli import run_deblur

    from algnet_cli.cpu import cpu_facts
    from algnet_cli.images import read_image

    made_on = ("Intel(R) Xeon(R) Processor", "2.13.0+cpu")
    root = Path(__file__).resolve().parents[1] / "examples"
    out = tmp_path / "out"
    r = run_deblur(root / "blurred", "-o", f"{out}/", "-q", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "algnet-run.json").read_text())["precision"] == "fp32"  # what auto is on a CPU
    for made in sorted((root / "deblurred").iterdir()):
        if (cpu_facts()[0], torch.__version__) == made_on:
            assert (out / made.name).read_bytes() == made.read_bytes(), f"{made.name} changed"
        else:
            a, b = read_image(out / made.name).astype(float), read_image(made).astype(float)
            assert 10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-12)) > 45


def test_deblur_prefaults_for_its_first_image_on_the_cpu_and_not_for_a_gpu(tmp_path, monkeypatch):
    import importlib

    command = importlib.import_module("algnet_cli.cli.deblur")  # the module, not the command it defines
    calls = []
    monkeypatch.setattr("algnet_cli.cpu.prefault", calls.append)
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", np.zeros((720, 1280, 3), np.uint8))
    job = _plan(folder, tmp_path / "out")
    command._prefault_first_forward(job, "default", "cpu", None, None)
    assert calls == [pytest.approx(1.1 * forward_bytes(720, 1280, 16))]  # the image's buffers on top
    command._prefault_first_forward(job, "default", "cuda:0", None, None)
    command._prefault_first_forward(job, "no-such-model", "cpu", None, None)
    assert len(calls) == 1


def test_the_estimate_never_stops_a_run(tmp_path, monkeypatch):
    """A broken user registry, or a file named like a registry entry: the estimate gives up or reads the
    file, as the load would take it, and leaves the errors to the load."""
    monkeypatch.setenv("ALGNET_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    builtin = model_shape("default")  # the built-in default, with no user registry
    (tmp_path / "cfg" / "models.json").write_text("{not json")
    # a broken user registry is named and left out: the built-in default stays the default
    assert model_shape("default") == builtin and model_shape("anything") is None
    tiny = write_tiny_checkpoint(tmp_path / "default")  # a file called "default" in the working folder
    monkeypatch.chdir(tmp_path)
    assert model_shape("default") == builtin  # the registry name wins over the file, as the load decides
    tiny.rename(tmp_path / "m.safetensors")
    assert model_shape("m.safetensors") == (8, 16)
