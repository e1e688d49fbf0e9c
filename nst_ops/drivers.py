"""Optimisation drivers: every objective+gradient evaluation is one iteration and one loss row.

`adam`: projected Adam (a step, then clamp to [0,1]). `lbfgs`: projected L-BFGS with Armijo
backtracking (see nst_ops.lbfgs); every evaluated image lies in [0,1]. Both stop at their
evaluation budget or as soon as a row reaches `target_loss`.

Both run a batch of B images (pairs-per-gpu): every image keeps its own optimizer state and
stopping, so its loss rows are those of running it alone (up to float rounding of batched
convolutions); a stopped image leaves the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from nst_ops.deferred import DeferredRows, rows_per_flush
from nst_ops.lbfgs import LBFGSState, armijo_ok
from nst_ops.objective import LossTerms, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder, record_all


def evaluate(x: Tensor, objective: StyleObjective, grad: bool) -> tuple[LossTerms, Tensor]:
    """Loss terms at clamp(x, 0, 1) (B, C, H, W) and, when `grad`, the gradient (B, C·H·W,
    detached). For x in [0,1] (as both drivers keep it) this is the full gradient of the
    objective at x; image b's gradient depends on image b alone."""
    if not grad:
        with torch.no_grad():
            return objective(x.clamp(0, 1).expand(-1, 3, -1, -1)), x.new_empty(0)
    x = x.detach().requires_grad_(True)
    terms = objective(x.clamp(0, 1).expand(-1, 3, -1, -1))
    (g,) = torch.autograd.grad(terms.total.sum(), x)
    return terms, g.reshape(x.shape[0], -1)


class _Live:
    """Which images of a batch are still running. `drop` removes the stopped ones (their
    result goes to `out`) from the per-image tensors and the objective."""

    def __init__(self, recs: Sequence[Recorder], objective: StyleObjective) -> None:
        self.recs, self.objective = list(recs), objective
        self.index = list(range(len(recs)))
        self.out: list[Tensor | None] = [None] * len(recs)

    def drop(self, stops: list[bool], at: Tensor, *tensors: Tensor) -> list[Tensor]:
        """Images b with stops[b] end with rec.stop_image(at[b]); returns `tensors` (per-image
        along dim 0) without those rows (unchanged when none stopped)."""
        if not any(stops):
            return list(tensors)
        keep = [b for b, stop in enumerate(stops) if not stop]
        for b, stop in enumerate(stops):
            if stop:
                j = self.index[b]
                self.out[j] = self.recs[j].stop_image(at[b]).unsqueeze(0)
        self.index = [self.index[b] for b in keep]
        if keep:
            self.objective = self.objective.select(keep)
        rows = torch.tensor(keep, dtype=torch.long, device=at.device)
        return [t.index_select(0, rows) for t in tensors]

    def current(self) -> list[Recorder]:
        return [self.recs[j] for j in self.index]

    def results(self, final: Tensor) -> list[Tensor]:
        for b, j in enumerate(self.index):
            self.out[j] = final[b : b + 1]
        return [t for t in self.out if t is not None]


def _column(values: list[float], like: Tensor) -> Tensor:
    """Per-image values as a (B, 1, ..., 1) tensor that broadcasts against `like`."""
    shape = (len(values),) + (1,) * (like.dim() - 1)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)


def adam(
    x: Tensor, objective: StyleObjective, params: Sequence[StyleParams], recs: Sequence[Recorder]
) -> list[Tensor]:
    """Projected Adam (Kingma & Ba 2015, torch.optim.Adam's defaults) on a batch x (B, C, H, W):
    a step, then clamp to [0,1], with image b's own learning rate. With ema_decay > 0 image b's
    result is the exponential moving average of its iterates (iterate averaging), started at x.
    Returns B images (1, C, H, W): the result, or where an image stopped, its stop image.
    Rows reach the Recorders in blocks (nst_ops.deferred: no host sync per iteration on a GPU)."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    live = _Live(recs, objective)
    x = x.detach().clone()
    m, v, ema = torch.zeros_like(x), torch.zeros_like(x), x.clone()
    lr = _column([p.learning_rate for p in params], x)
    decay = _column([p.ema_decay for p in params], x)
    rows = DeferredRows(x, recs, rows_per_flush(x.device))
    n = params[0].iterations  # p.iterations evaluations in this stage
    for t in range(1, n + 1):
        terms, g = evaluate(x, live.objective, grad=True)
        rows.push(terms, x)
        if rows.due() or t == n:
            stops = rows.flush(live.current())
            if any(stops):
                at = rows.stop_images(stops, live.current(), x)
                x, g, m, v, ema, lr, decay = live.drop(stops, at, x, g, m, v, ema, lr, decay)
                rows.keep(stops)
                if not live.index:
                    return live.results(x)
        g = g.view_as(x)
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        x.sub_(lr / (1 - beta1**t) * m / denom).clamp_(0, 1)
        ema.mul_(decay).add_((1 - decay) * x)
    return live.results(ema)  # ema == x exactly where ema_decay is 0


def lbfgs(
    x: Tensor, objective: StyleObjective, params: Sequence[StyleParams], recs: Sequence[Recorder]
) -> list[Tensor]:
    """Projected L-BFGS on a batch x (B, C, H, W), each image with its own curvature pairs,
    step and line search, in lockstep (one evaluation of every live image per iteration):
    trial points clamp(x + t·d) are evaluated with their full gradient, Armijo is checked
    along the actual displacement, and the iterate always stays in [0,1]. Returns B images
    (1, C, H, W): the last accepted point (always an evaluated one), or the stop image."""
    shape, live = x.shape[1:], _Live(recs, objective)
    history = min(100, params[0].iterations)  # the buffer holds at most this many pairs
    states = [LBFGSState(history) for _ in recs]
    stop = recs[0].evaluations + params[0].iterations  # p.iterations evaluations in this stage
    x = x.detach().reshape(x.shape[0], -1).clamp(0, 1)
    terms, g = evaluate(x.view(-1, *shape), objective, grad=True)
    stops, host = record_all(live.current(), terms, x)
    f = _kept(host[:, 0].tolist(), stops)
    x, g = live.drop(stops, x, x, g)
    steps, d = _directions([states[j] for j in live.index], g)
    while live.index and live.current()[0].evaluations < stop:
        x_new = (x + _column(steps, x) * d).clamp_(0, 1)
        terms, g_new = evaluate(x_new.view(-1, *shape), live.objective, grad=True)
        s = x_new - x
        # one transfer per iteration: the loss rows and the slopes ∇fᵀs of the Armijo test
        stops, host = record_all(live.current(), terms, x_new, extra=(g * s).sum(1))
        f_new, slopes = host[:, 0].tolist(), host[:, -1].tolist()
        for b, j in enumerate(live.index):
            if stops[b]:
                continue
            if armijo_ok(f_new[b], f[b], 1.0, slopes[b]) and slopes[b] < 0:
                states[j].update(s[b].clone(), g_new[b] - g[b])
                x[b], g[b], f[b] = x_new[b], g_new[b], f_new[b]
                d[b], steps[b] = states[j].direction(g[b])
            else:
                steps[b] *= 0.5
        f, steps = _kept(f, stops), _kept(steps, stops)
        x, g, d = live.drop(stops, x_new, x, g, d)
    return [t.view(1, *shape) for t in live.results(x)]


def _kept(values: list[float], stops: list[bool]) -> list[float]:
    return [v for v, stop in zip(values, stops, strict=True) if not stop]


def _directions(states: list[LBFGSState], g: Tensor) -> tuple[list[float], Tensor]:
    """First search directions (B, n) and step lengths of a batch of gradients g (B, n)."""
    pairs = [state.direction(g[b]) for b, state in enumerate(states)]
    if not pairs:
        return [], g
    return [step for _, step in pairs], torch.stack([d for d, _ in pairs])
