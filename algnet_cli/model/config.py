"""ALGNet hyperparameters as a frozen dataclass, and the two configurations the official code names."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ALGNetConfig:
    """Everything needed to build an ALGNet; the official constructor's arguments plus the Mamba sizes.

    The network always has four encoder levels (channels w, 2w, 4w, 8w; middle 16w), as in the
    official code, whose multi-scale stems and skip merges are written for exactly four.
    """

    width: int = 32
    middle_blk_num: int = 8
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)  # four levels
    dec_blk_nums: tuple[int, ...] = (8, 4, 2, 2)
    img_channel: int = 3
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # None: ceil(channels / 16) in every block, as mamba-ssm's "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc_blk_nums", tuple(int(n) for n in self.enc_blk_nums))
        object.__setattr__(self, "dec_blk_nums", tuple(int(n) for n in self.dec_blk_nums))
        if len(self.enc_blk_nums) != 4 or len(self.dec_blk_nums) != 4:
            raise ValueError("ALGNet has exactly four encoder and four decoder stages")
        if self.width < 4 or self.width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {self.width}")
        if min((self.middle_blk_num, *self.enc_blk_nums, *self.dec_blk_nums)) < 0:
            raise ValueError("block counts cannot be negative")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (2 ** levels)."""
        return 16

    def block_dt_rank(self, channels: int) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(channels / 16)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["enc_blk_nums"] = list(self.enc_blk_nums)
        d["dec_blk_nums"] = list(self.dec_blk_nums)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ALGNetConfig:
        fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**fields)

    def describe(self) -> str:
        enc = ",".join(map(str, self.enc_blk_nums))
        dec = ",".join(map(str, self.dec_blk_nums))
        return f"width {self.width}, enc [{enc}], middle {self.middle_blk_num}, dec [{dec}], d_state {self.d_state}"


#: The final default of the official ``algnet.py`` (54.6 M values in the state dict).
DEFAULT = ALGNetConfig()
#: The earlier default, "same as NAFNet" (37.7 M values).
NAFNET_STYLE = ALGNetConfig(middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28), dec_blk_nums=(1, 1, 1, 1))


#: precisions the network runs in (convolutions under autocast; the scan and its norms stay in fp32)
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelDescriptor:
    """What a loaded model is, as it will run: the facts a run record and a runner need.

    source: what the user named (a registry name, an hf:// reference or a path); path and sha256:
    the file it came from (None for a module built in memory). size_multiple: inputs are padded to
    a multiple of this. tlc_size: the training crop the test-time local converter is set for, or
    None. scan_backend: the selective-scan kernel that runs on ``device``.
    """

    config: ALGNetConfig
    source: str
    path: str | None
    sha256: str | None
    size_multiple: int
    precisions: tuple[str, ...]
    tlc_size: tuple[int, int] | None
    scan_backend: str
    device: str

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "config": self.config.to_dict(),
            "size_multiple": self.size_multiple,
            "precisions": list(self.precisions),
            "tlc": list(self.tlc_size) if self.tlc_size else None,
            "scan_backend": self.scan_backend,
        }
