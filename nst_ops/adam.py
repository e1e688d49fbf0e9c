"""Projected Adam (Kingma & Ba 2015, torch.optim.Adam's defaults) for a batch of images: a step,
then clamp to [0,1] (the projection onto the box), with each image's own learning rate and
optional iterate averaging. `Adam.init` / `Adam.step` over an `AdamState` (nst_ops.drivers runs
them); `update` is the step's arithmetic, one function of the state that a Compiler may compile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nst_ops.compiling import Compiler
from nst_ops.params import StyleParams
from nst_ops.state import per_image, select_images, state

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def corrections(t: int) -> tuple[float, float]:
    """Step t's bias corrections (1 − β1^t, √(1 − β2^t))."""
    return 1 - BETA1**t, math.sqrt(1 - BETA2**t)


@state
@dataclass
class AdamState:
    """x (B, C, H, W) in [0,1]: the iterate, evaluated next; m, v: the moments; ema: the
    iterate average (the result; x itself where the decay is 0); lr and decay (B, 1, 1, 1) per
    image; t: the steps taken (one count for the batch: its images run in lockstep)."""

    x: Tensor
    m: Tensor
    v: Tensor
    ema: Tensor
    lr: Tensor
    decay: Tensor
    t: int = 0

    def point(self) -> Tensor:
        return self.x

    def result(self) -> Tensor:
        return self.ema

    def select(self, keep: Tensor) -> AdamState:
        return select_images(self, keep)


def update(state: AdamState, g: Tensor, first: float | Tensor, second: float | Tensor) -> None:
    """One step, in place, with the gradient g (B, C·H·W) at state.x and the bias corrections
    `first` = 1 − β1^t, `second` = √(1 − β2^t): x ← clamp(x − lr·m̂/(√v̂ + ε), 0, 1), then
    ema ← decay·ema + (1 − decay)·x."""
    x, m, v = state.x, state.m, state.v
    g = g.view_as(x)
    m.mul_(BETA1).add_(g, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
    denom = (v.sqrt() / second).add_(EPS)
    x.sub_(state.lr / first * m / denom).clamp_(0, 1)
    state.ema.mul_(state.decay).add_((1 - state.decay) * x)


class Adam:
    """Projected Adam; `compiler` runs `update` (eagerly by default)."""

    def __init__(self, compiler: Compiler | None = None) -> None:
        self.compiler = compiler or Compiler()
        self._update = self.compiler.step(update)

    def init(self, x: Tensor, params: Sequence[StyleParams]) -> AdamState:
        """The state at the start images x (B, C, H, W) (clamped to [0,1]): zero moments, the
        average started at x, image b's learning_rate and ema_decay from params[b]."""
        x = x.detach().clamp(0, 1)  # a new tensor: updated in place
        lr = per_image([p.learning_rate for p in params], x)
        decay = per_image([p.ema_decay for p in params], x)
        return AdamState(x, torch.zeros_like(x), torch.zeros_like(x), x.clone(), lr, decay)

    def step(self, state: AdamState, rows: Tensor, g: Tensor) -> AdamState:
        """Step t + 1 from the gradient g (B, C·H·W) at state.x (the loss rows are not
        needed); updates the state's tensors in place."""
        state.t += 1
        first, second = self.compiler.constants(corrections, g.device)(state.t)
        self._update(state, g, first, second)
        return state
