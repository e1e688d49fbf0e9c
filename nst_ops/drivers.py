"""Optimisation drivers: every objective+gradient evaluation is one iteration and one loss row.

`adam`: projected Adam (a step, then clamp to [0,1]). `lbfgs`: projected L-BFGS with Armijo
backtracking (see nst_ops.lbfgs); every evaluated image lies in [0,1]. Both stop at their
evaluation budget or as soon as a row reaches `target_loss`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nst_ops.lbfgs import LBFGSState, armijo_ok
from nst_ops.objective import LossTerms, StyleObjective
from nst_ops.params import StyleParams


@dataclass(frozen=True)
class Progress:
    """Reported to the callback: iteration i of `iterations`, the loss of row i, seconds since
    the loop started."""

    iteration: int
    iterations: int
    total_loss: float
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


class Recorder:
    """Collects one loss row per evaluation; tells the drivers when to stop."""

    def __init__(
        self, params: StyleParams, callback: ProgressCallback | None, iterations: int
    ) -> None:
        self.params = params
        self.callback = callback
        self.iterations = iterations  # over all stages, for progress reports
        self.stage = 1
        self.stages: list[int] = []
        self.scale = params.image_size
        self.scales: list[int] = []
        self.target_active = True  # target_loss applies to the final segment's objective only
        self.rows: list[Tensor] = []
        self.times: list[float] = []
        self.start = time.perf_counter()
        self.reached = False
        self.diverged_at: int | None = None
        self.best: tuple[float, Tensor] | None = None  # lowest finite total and its image

    def record(self, terms: LossTerms, x: Tensor) -> bool:
        """Log the row of image `x`; True when the caller must stop: target_loss reached, or
        a non-finite loss (divergence; `stop_image` then gives the best finite image)."""
        row = terms.stacked()[0].detach()
        self.rows.append(row)
        self.stages.append(self.stage)
        self.scales.append(self.scale)
        self.times.append(time.perf_counter() - self.start)
        i, target, total = len(self.rows) - 1, self.params.target_loss, float(row[0])
        if self.callback is not None:
            self.callback(Progress(i, self.iterations, total, self.times[-1]))
        if not bool(torch.isfinite(row).all()):
            self.diverged_at = i
            return True
        if self.best is None or total < self.best[0]:
            self.best = (total, x.detach().clone())
        self.reached = self.target_active and target is not None and total <= target
        return self.reached

    def stop_image(self, x: Tensor) -> Tensor:
        """The image to return when stopping at `x`: the best finite one after divergence."""
        if self.diverged_at is not None and self.best is not None:
            return self.best[1].view_as(x)
        return x

    @property
    def evaluations(self) -> int:
        return len(self.rows)


def evaluate(x: Tensor, objective: StyleObjective, grad: bool) -> tuple[LossTerms, Tensor]:
    """Loss terms at clamp(x, 0, 1) and, when `grad`, the gradient (flat, detached). For x in
    [0,1] (as both drivers keep it) this is the full gradient of the objective at x."""
    if not grad:
        with torch.no_grad():
            return objective(x.clamp(0, 1).expand(-1, 3, -1, -1)), x.new_empty(0)
    x = x.detach().requires_grad_(True)
    terms = objective(x.clamp(0, 1).expand(-1, 3, -1, -1))
    (g,) = torch.autograd.grad(terms.total.sum(), x)
    return terms, g.reshape(-1)


def adam(x: Tensor, objective: StyleObjective, p: StyleParams, rec: Recorder) -> Tensor:
    """Projected Adam: a step, then clamp to [0,1]. With ema_decay > 0 the returned image is
    the exponential moving average of the iterates (iterate averaging), started at x."""
    x = x.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=p.learning_rate)
    ema = x.detach().clone() if p.ema_decay > 0 else None
    for _ in range(p.iterations):  # p.iterations evaluations in this stage
        terms, g = evaluate(x, objective, grad=True)
        if rec.record(terms, x):
            return rec.stop_image(x.detach())
        x.grad = g.view_as(x)
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            if ema is not None:
                ema.mul_(p.ema_decay).add_(x, alpha=1.0 - p.ema_decay)
    return ema if ema is not None else x.detach()


def lbfgs(x: Tensor, objective: StyleObjective, p: StyleParams, rec: Recorder) -> Tensor:
    """Projected L-BFGS: trial points clamp(x + t·d) are evaluated with their full gradient,
    Armijo is checked along the actual displacement, and the iterate always stays in [0,1].
    Returns the last accepted point (always an evaluated one)."""
    state = LBFGSState()
    stop = rec.evaluations + p.iterations  # p.iterations evaluations in this stage
    shape = x.shape
    x = x.detach().reshape(-1).clamp(0, 1)
    terms, g = evaluate(x.view(shape), objective, grad=True)
    if rec.record(terms, x):
        return rec.stop_image(x).view(shape)
    f = float(terms.total[0].detach())
    d, step = state.direction(g)
    while rec.evaluations < stop:
        x_new = (x + step * d).clamp_(0, 1)
        terms, g_new = evaluate(x_new.view(shape), objective, grad=True)
        if rec.record(terms, x_new):
            return rec.stop_image(x_new).view(shape)
        f_new = float(terms.total[0].detach())
        s = x_new - x
        if armijo_ok(f_new, f, 1.0, float(g.dot(s))) and float(g.dot(s)) < 0:
            state.update(s, g_new - g)
            x, g, f = x_new, g_new, f_new
            d, step = state.direction(g)
        else:
            step *= 0.5
    return x.view(shape)
