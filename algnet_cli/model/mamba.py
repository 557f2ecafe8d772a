"""The Mamba-1 block (mamba-ssm's ``Mamba``), written for inference with the scan dispatcher.

Parameter names and shapes are mamba-ssm's, so official checkpoints load unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..ops import causal_conv1d_silu, selective_scan


class Mamba(nn.Module):
    """Selective state-space block over a token sequence.

    forward: (batch, length, d_model) float -> same shape and dtype.
    """

    def __init__(self, d_model: int, d_state: int = 32, d_conv: int = 4, expand: int = 2, dt_rank: int | None = None):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.scan_backend: str | None = None  # None: the dispatcher's default
        d_inner = self.d_inner
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        self._init_dt()

    def _init_dt(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """mamba-ssm's initialisation of the step size (matters only for training from scratch)."""
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, length, d_model) -> same. Every tensor stays in the (batch, length, x) layout the
        projections produce; the scan reads transposed views of them in place."""
        xz = self.in_proj(hidden)  # (b, l, 2*d_inner)
        x, z = xz.chunk(2, dim=-1)
        assert self.conv1d.bias is not None  # built with bias=True
        x = causal_conv1d_silu(x, self.conv1d.weight, self.conv1d.bias, backend=self.scan_backend)
        x_dbl = self.x_proj(x)  # (b, l, dt_rank + 2*d_state)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        A = -torch.exp(self.A_log.float())
        y = selective_scan(
            x.transpose(1, 2),
            dt.transpose(1, 2),
            A,
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z.transpose(1, 2),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            delta_proj=self.dt_proj.weight,  # dt_proj without its bias (added in the scan)
            backend=self.scan_backend,
        )
        return self.out_proj(y.transpose(1, 2))
