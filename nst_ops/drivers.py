"""Optimisation drivers: every objective+gradient evaluation is one iteration and one loss row.

`adam`: projected Adam (a step, then clamp to [0,1]). `lbfgs`: projected L-BFGS with Armijo
backtracking (see nst_ops.lbfgs); every evaluated image lies in [0,1]. Both stop at their
evaluation budget or as soon as a row reaches `target_loss`, never evaluate more than
`iterations` times, and make every decision on the device: the loss rows reach the Recorders in
blocks (nst_ops.deferred; every row on the CPU), so on a GPU Python enqueues iterations ahead
and the evaluation can be a captured graph (nst_ops.evaluation).

Both run a batch of B images (pairs-per-gpu): every image keeps its own optimizer state and
stopping, so its loss rows are those of running it alone (up to float rounding of batched
convolutions); a stopped image leaves the batch at the next flush (its rows past the stop are
discarded).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nst_ops.deferred import DeferredRows, rows_per_flush
from nst_ops.evaluation import Evaluator
from nst_ops.lbfgs import MEMORY, LBFGSHistory, ieee_products, trial
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder


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
    x: Tensor,
    objective: StyleObjective,
    params: Sequence[StyleParams],
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> list[Tensor]:
    """Projected Adam (nst_ops.adam) on a batch x (B, C, H, W): a step, then clamp to [0,1],
    with image b's own learning rate. With ema_decay > 0 image b's result is the exponential
    moving average of its iterates (iterate averaging), started at x. Returns B images
    (1, C, H, W): the result, or where an image stopped, its stop image."""
    live = _Live(recs, objective)
    x = x.detach().clamp(0, 1)  # a new tensor: updated in place below
    m, v, ema = torch.zeros_like(x), torch.zeros_like(x), x.clone()
    lr = _column([p.learning_rate for p in params], x)
    decay = _column([p.ema_decay for p in params], x)
    rows = DeferredRows(x, recs, rows_per_flush(x.device), evaluate.track_rows)
    n = params[0].iterations  # p.iterations evaluations in this stage
    for t in range(1, n + 1):
        loss_rows, g = evaluate(x, live.objective)
        rows.push(loss_rows, x)
        if rows.due() or t == n:
            stops = rows.flush(live.current())
            if any(stops):
                at = rows.stop_images(stops, live.current(), x)
                x, g, m, v, ema, lr, decay = live.drop(stops, at, x, g, m, v, ema, lr, decay)
                rows.keep(stops)
                if not live.index:
                    return live.results(x)
        evaluate.adam_step(x, g, m, v, ema, lr, decay, t=t)  # compiled where the evaluator is
    return live.results(ema)  # ema == x exactly where ema_decay is 0


def lbfgs(
    x: Tensor,
    objective: StyleObjective,
    params: Sequence[StyleParams],
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> list[Tensor]:
    """Projected L-BFGS on a batch x (B, C, H, W), each image with its own curvature pairs,
    step and line search, in lockstep (one evaluation of every live image per iteration):
    trial points clamp(x + t·d) are evaluated with their full gradient, Armijo is checked
    along the actual displacement (accept, or halve t), and the iterate always stays in
    [0,1]. Returns B images (1, C, H, W): the last accepted point (always an evaluated one),
    or the stop image."""
    shape, live = x.shape[1:], _Live(recs, objective)
    x = x.detach().reshape(x.shape[0], -1).clamp(0, 1)
    history, rows, g, f, d, step = _lbfgs_start(x, shape, objective, recs, evaluate)
    evaluated, x_new = x, trial(x, d, step)
    for _ in range(1, params[0].iterations):  # p.iterations evaluations in this stage
        if rows.due():
            x, g, f, d, step, x_new, evaluated = _flush_lbfgs(
                rows, live, history, evaluated, x, g, f, d, step, x_new, evaluated
            )
            if not live.index:
                return [t.view(1, *shape) for t in live.results(x)]
        loss_rows, g_new = evaluate(x_new.view(-1, *shape), live.objective)
        rows.push(loss_rows, x_new.view(-1, *shape))
        evaluated = x_new
        # the bookkeeping, compiled where the evaluator is: a few calls, not ~180 operations
        total = loss_rows[:, 0]
        with ieee_products():  # TF32 (--precision tf32) is for the objective, not these
            x, g, f, accept, new, products = evaluate.accept_trial(
                history, x, g, f, x_new, g_new, total
            )
            history.write(*new)  # in place, eagerly: a compiled write would copy the buffer
            d, step, x_new = evaluate.next_trial(history, x, g, d, step, accept, products)
    x, *_ = _flush_lbfgs(rows, live, history, evaluated, x, g, f, d, step)
    return [t.view(1, *shape) for t in live.results(x)]


def _lbfgs_start(
    x: Tensor,
    shape: torch.Size,
    objective: StyleObjective,
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> tuple[LBFGSHistory, DeferredRows, Tensor, Tensor, Tensor, Tensor]:
    """The first evaluation, at the start images x (B, n) in [0,1]: the empty history, the row
    tracker holding its rows, and the gradient g, loss f (float64) and first direction d with
    its step."""
    history = LBFGSHistory(x.shape[0], x.shape[1], MEMORY, x)
    rows = DeferredRows(x.view(-1, *shape), recs, rows_per_flush(x.device), evaluate.track_rows)
    loss_rows, g = evaluate(x.view(-1, *shape), objective)
    rows.push(loss_rows, x.view(-1, *shape))
    everyone = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    with ieee_products():
        d, step = history.direction(g, everyone)
    return history, rows, g, loss_rows[:, 0].double(), d, step


def _flush_lbfgs(
    rows: DeferredRows, live: _Live, history: LBFGSHistory, at: Tensor, *tensors: Tensor
) -> list[Tensor]:
    """Hand the pending rows to the Recorders; drop the images that stopped (their stop image:
    the evaluated point that reached target_loss, or after a divergence the segment's best),
    from `tensors` (per image, dim 0), the history and the pending-row tracker."""
    stops = rows.flush(live.current())
    if not any(stops):
        return list(tensors)
    shape = rows.best_image.shape[1:]
    stopped = rows.stop_images(stops, live.current(), at.view(-1, *shape))
    kept = live.drop(stops, stopped.flatten(1), *tensors)
    keep = [b for b, s in enumerate(stops) if not s]
    history.select(torch.tensor(keep, dtype=torch.long, device=at.device))
    rows.keep(stops)
    return kept
