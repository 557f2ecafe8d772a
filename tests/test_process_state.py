"""Library calls leave the caller's process as they found it: the umask, glibc's allocator, the
environment and the Hub client's logging. The `algnet` command sets what it needs for itself."""

from __future__ import annotations

import os

import pytest
from helpers.cli import TINY, write_tiny_checkpoint

import algnet_cli
from algnet_cli import cpu, fileio


def test_an_atomic_write_reads_the_umask_without_changing_it(tmp_path, monkeypatch):
    seen = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: seen.append(m) or real(m))
    old = real(0o027)
    try:
        fileio.atomic_write_text(tmp_path / "a.txt", "x")
        assert seen == []  # never set, not even to 0 for an instant (another thread's files would get 0666)
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    finally:
        real(old)


def test_load_model_leaves_the_allocator_and_the_environment_as_found(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cpu, "keep_freed_memory", lambda: calls.append(1) or True)
    for var in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    before = dict(os.environ)
    model = algnet_cli.load_model(write_tiny_checkpoint(tmp_path / "m.safetensors"), device="cpu")
    assert model.config.width == TINY.width and model.descriptor is not None
    assert calls == [] and dict(os.environ) == before


def test_a_hub_download_restores_the_hub_clients_logging(tmp_path, monkeypatch):
    from huggingface_hub.utils import logging as hf_logging
    from test_hub import REPO, FakeHub

    from algnet_cli import hub

    server = FakeHub()
    server.add(REPO, "m.safetensors", write_tiny_checkpoint(tmp_path / "m.safetensors").read_bytes())
    server.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
        hf_logging.set_verbosity_info()
        before = dict(os.environ)
        path = hub.resolve(f"hf://{REPO}/m.safetensors", cache=tmp_path / "cache", quiet=True)
        assert path.is_file() and server.requests("GET")
        assert hf_logging.get_verbosity() == hf_logging.INFO  # as the caller set it
        assert dict(os.environ) == before  # no telemetry or timeout variables set in the caller's environment
    finally:
        hf_logging.set_verbosity_warning()
        server.stop()


@pytest.mark.parametrize("command", [["doctor"], ["models", "list"]])
def test_the_command_sets_its_own_process_up(command, monkeypatch):
    from helpers.cli import run_cli

    calls = []
    monkeypatch.setattr(cpu, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
    code, _, err = run_cli(*command)
    assert code == 0, err
    assert calls == [1] and os.environ.get("HF_HUB_DISABLE_TELEMETRY") == "1"
