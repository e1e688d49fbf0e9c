"""Projected Adam's update (Kingma & Ba 2015, torch.optim.Adam's defaults) for a batch of images,
as one function of tensors: nst_ops.drivers.adam runs it each iteration, as written here or
compiled (nst_ops.evaluation), where its ~20 small kernels become a few.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def corrections(t: int) -> tuple[float, float]:
    """Step t's bias corrections (1 − β1^t, √(1 − β2^t))."""
    return 1 - BETA1**t, math.sqrt(1 - BETA2**t)


class CorrectionTable:
    """`corrections` for t = 1, 2, … as 0-dim float64 views of one tensor on a device: step t
    reads entry t − 1 (no transfer per step), and a compiled `adam_step` gets tensors, not a
    new constant at every t (which would recompile it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.table = torch.zeros((0, 2), dtype=torch.float64, device=device)

    def at(self, t: int) -> tuple[Tensor, Tensor]:
        if t > self.table.shape[0]:  # grown by doubling: one transfer per doubling
            n = max(2 * self.table.shape[0], t, 1024)
            values = [corrections(k) for k in range(1, n + 1)]
            self.table = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.table[t - 1, 0], self.table[t - 1, 1]


def adam_step(
    x: Tensor, g: Tensor, m: Tensor, v: Tensor, ema: Tensor, lr: Tensor, decay: Tensor,
    first: float | Tensor, second: float | Tensor,
) -> None:  # fmt: skip
    """One step, in place: x (B, C, H, W) in [0,1] and its gradient g (B, C·H·W); the moments
    m, v and the iterate average ema (B, C, H, W); per image lr and ema decay (B, 1, 1, 1);
    the bias corrections `first` = 1 − β1^t and `second` = √(1 − β2^t). x ← clamp(x −
    lr·m̂/(√v̂ + ε), 0, 1): the clamp projects onto the box [0,1]."""
    g = g.view_as(x)
    m.mul_(BETA1).add_(g, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
    denom = (v.sqrt() / second).add_(EPS)
    x.sub_(lr / first * m / denom).clamp_(0, 1)
    ema.mul_(decay).add_((1 - decay) * x)
