"""Checkpoint reading in one place: formats, wrappers, prefixes, configuration inference, strict load.

Only tensors are ever read: ``.safetensors`` through safetensors, ``.pth``/``.pt``/``.ckpt``
through ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, CheckpointNotFoundError, StateDictMismatchError, first_line
from .algnet import ALGNet
from .config import ALGNetConfig

#: Keys under which trainers nest the state dict, most preferred first (EMA weights beat raw ones).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net")
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its bare state dict (wrappers and ``module.`` removed)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file (.safetensors or .pth)")
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    if not path.is_file():
        from ..fileio import unreadable_reason

        raise CheckpointError(f"{path}: {unreadable_reason(path) or 'not a regular file (a special file)'}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    suffix = _format_by_content(path) or path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(
                f"{path}: not a readable safetensors file ({first_line(e, 200) or type(e).__name__})"
            ) from None
    elif suffix in PICKLE_SUFFIXES:
        try:
            with warnings.catch_warnings():  # torch warns about what it refuses; the error below says it
                warnings.simplefilter("ignore")
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "weights only load failed" in str(e).lower() or "global" in str(e).lower():
                found = re.search(r"GLOBAL ([\w.]+)", str(e))
                what = f" ({found.group(1)})" if found else ""
                raise CheckpointError(
                    f"{path}: refused to load: the file holds objects other than tensors{what}, which could run "
                    "code; only checkpoints of plain tensors are read"
                ) from None
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint, truncated or corrupt ({first_line(e, 200) or type(e).__name__})"
            ) from None
        except Exception as e:  # the unpickler reports damage with many types (KeyError, EOFError, ...)
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint, truncated or corrupt ({first_line(e, 200) or type(e).__name__})"
            ) from None
    else:
        raise CheckpointError(f"{path}: unknown checkpoint format {suffix or '(no suffix)'}; use .safetensors or .pth")
    return unwrap_state_dict(obj, str(path))


def _format_by_content(path: Path) -> str | None:
    """What the bytes say the checkpoint is (the name's suffix is only a hint): ``.safetensors`` (an
    8-byte header length, then its JSON header), ``.pth`` (a zip archive, as torch.save writes, or a
    pickle), or None when they say neither."""
    import struct

    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= struct.unpack("<Q", head[:8])[0] <= path.stat().st_size:
        return ".safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return ".pth"
    return None


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Peel trainer wrappers (``params_ema``, ``params``, ``state_dict``, ``model``, ``net``) and a
    ``module.`` prefix off a loaded object; the result maps names to tensors."""
    for _ in range(4):  # wrappers can nest, e.g. {'model': {'state_dict': ...}}
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointError(f"{source}: holds no state dict (found {_describe(obj)})")
    sd = dict(obj)
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _describe(obj: object) -> str:
    if isinstance(obj, Mapping):
        keys = ", ".join(map(str, list(obj)[:6]))
        return f"a mapping with keys {keys}" if keys else "an empty mapping"
    return type(obj).__name__


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    idx = [int(m.group(1)) for k in sd if (m := rx.match(k))]
    return max(idx) + 1 if idx else 0


def infer_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> ALGNetConfig:
    """Read the ALGNet hyperparameters off the tensors' names and shapes."""
    if "intro.weight" not in sd or not any(k.endswith("g_layer.mamba.A_log") for k in sd):
        raise CheckpointError(f"{source}: not an ALGNet checkpoint (no intro.weight or Mamba blocks found)")
    width, img_channel = sd["intro.weight"].shape[:2]
    enc = tuple(_count(sd, rf"encoders\.{i}\.(\d+)\.") for i in range(4))
    dec = tuple(_count(sd, rf"decoders\.{i}\.(\d+)\.") for i in range(4))
    middle = _count(sd, r"middle_blks\.(\d+)\.")
    a_log = next(v for k, v in sd.items() if k.endswith("g_layer.mamba.A_log"))
    in_proj = next(v for k, v in sd.items() if k.endswith("g_layer.mamba.in_proj.weight"))
    conv = next(v for k, v in sd.items() if k.endswith("g_layer.mamba.conv1d.weight"))
    expand, rem = divmod(in_proj.shape[0], 2 * in_proj.shape[1])
    if rem:
        raise CheckpointError(f"{source}: Mamba in_proj has an odd shape {tuple(in_proj.shape)}")
    ranks = {}
    for k, v in sd.items():
        if k.endswith("g_layer.mamba.dt_proj.weight"):
            channels = sd[k.replace("dt_proj.weight", "out_proj.weight")].shape[0]
            ranks[channels] = v.shape[1]
    auto = all(r == -(-c // 16) for c, r in ranks.items())
    if not auto and len(set(ranks.values())) != 1:
        raise CheckpointError(f"{source}: dt_rank varies between blocks in a way ALGNet does not build ({ranks})")
    return ALGNetConfig(
        width=int(width),
        middle_blk_num=middle,
        enc_blk_nums=enc,
        dec_blk_nums=dec,
        img_channel=int(img_channel),
        d_state=int(a_log.shape[1]),
        d_conv=int(conv.shape[-1]),
        expand=int(expand),
        dt_rank=None if auto else int(next(iter(ranks.values()))),
    )


def build_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> ALGNet:
    """Build the network the tensors describe and load them strictly (float32, CPU)."""
    model = ALGNet(infer_config(sd, source))
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(missing, unexpected, mismatched, source)
    integer = sorted({str(v.dtype).replace("torch.", "") for v in sd.values() if not v.is_floating_point()})
    if integer:
        raise CheckpointError(
            f"{source}: tensors of integer type ({', '.join(integer)}; a quantised checkpoint?); ALGNet reads "
            "floating-point weights only"
        )
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(
            f"{source}: {len(bad)} tensors hold NaN or Inf values ({shown}); the checkpoint is damaged"
        )
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return model.eval()


def load_checkpoint(path: str | Path) -> ALGNet:
    """Read a checkpoint file and return the ALGNet it holds, in eval mode on the CPU."""
    return build_from_state_dict(read_checkpoint(path), str(path))


def save_safetensors(
    model_or_sd: ALGNet | Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write a state dict as ``.safetensors`` (contiguous CPU tensors, upstream key names)."""
    from safetensors.torch import save_file

    sd = model_or_sd.state_dict() if isinstance(model_or_sd, torch.nn.Module) else model_or_sd
    save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
