"""What the first forward of a run will need, known before torch is imported (so that its memory can
be faulted in meanwhile, see :func:`algnet_cli.cpu.prefault`)."""

from __future__ import annotations

from pathlib import Path

from ..tiling import CPU_BUDGET_GB, forward_bytes
from .plan import Plan

#: the padding multiple of a model built from a checkpoint file: the configuration read off its tensors
#: always has four encoder levels (model.checkpoint.infer_config), some possibly without blocks
CHECKPOINT_MULTIPLE = 2**4


def model_shape(model) -> tuple[int, int] | None:
    """(width, padding multiple) of a model named as ``algnet deblur --model`` takes it, read from the
    registry or a safetensors header without loading anything; None when not known that cheaply."""
    from .. import hub

    if not isinstance(model, (str, Path)):
        return None
    name, path = str(model), Path(model)
    try:  # a registry name wins over a file of the same name, as in the load
        entry = hub.find_entry(name)  # "default" is looked up as the registry says
    except Exception:  # noqa: BLE001 - a broken registry is for the load to report; a file still loads
        entry = None
    if entry is not None:
        if entry.config.get("width"):  # ALGNetConfig.multiple: 2 ** levels
            return int(entry.config["width"]), 2 ** len(entry.config.get("enc_blk_nums", (1, 1, 1, 1)))
        return None
    if not path.is_file():
        return None
    if path.suffix != ".safetensors":
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            width = int(f.get_slice("intro.weight").get_shape()[0])
    except Exception:  # noqa: BLE001 - only an estimate: whatever is wrong with the file is reported by the load
        return None
    return width, CHECKPOINT_MULTIPLE


def first_forward_bytes(plan: Plan, model, tile: int | None = None, max_memory_gb: float | None = None) -> float:
    """Peak memory of the first image's forward on the CPU (0 when not known: no image to run, a
    model whose shape is not known without loading it, a header that cannot be read)."""
    from ..errors import AlgnetError
    from ..images.probe import check_header, probe_image

    shape = model_shape(model)
    first = next((j for j in plan.images if j.action == "run" and j.problem is None), None)
    if shape is None or first is None:
        return 0.0
    try:
        head = probe_image(first.src)
        check_header(first.src, head, plan.request.output.max_pixels, frames=True)  # one the run will refuse: none
    except (AlgnetError, OSError):
        return 0.0
    h, w = head.height, head.width
    if tile:
        h, w = min(h, tile), min(w, tile)
    budget = (max_memory_gb if max_memory_gb is not None else CPU_BUDGET_GB) * 2**30
    return min(forward_bytes(h, w, *shape), budget)
