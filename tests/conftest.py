import os

# Triton kernels run on the CPU through the interpreter; must be set before triton is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # read once, at import: the loopback Hub serves plain files
# compiled CPU kernels go to a cache keyed by the kernels' source and numba's version, shared by this
# session, the CLIs it runs and later sessions of the same source (never by the user's own cache)
if "ALGNET_KERNEL_CACHE" not in os.environ:
    import hashlib
    import sys
    from importlib.metadata import version
    from pathlib import Path

    _ops = Path(__file__).resolve().parent.parent / "algnet_cli" / "ops"
    _key = hashlib.sha256()
    for _path in sorted([*_ops.glob("_numba_*.py"), _ops / "scan_fused.py"]):
        _key.update(_path.read_bytes())
    _key.update(f"{version('numba')} {sys.version}".encode())
    _home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ["ALGNET_KERNEL_CACHE"] = str(_home / "algnet-cli-test-kernels" / _key.hexdigest()[:16])

import pytest  # noqa: E402


def pytest_configure(config):
    # with pytest-xdist (`-n auto`), each worker's torch runs one thread: the workers share the cores
    # instead of each spinning up one thread per core (the commands it starts keep their own default)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip)
