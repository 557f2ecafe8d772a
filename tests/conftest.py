import os

# Triton kernels run on the CPU through the interpreter; must be set before triton is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# compiled CPU kernels go to a temporary cache, shared by this session and the CLIs it runs
if "ALGNET_KERNEL_CACHE" not in os.environ:
    import tempfile

    os.environ["ALGNET_KERNEL_CACHE"] = tempfile.mkdtemp(prefix="algnet-test-kernels-")

import pytest  # noqa: E402


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
