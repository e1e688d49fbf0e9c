"""The optimisation loop: every objective+gradient evaluation is one iteration and one loss row.

`run` drives any `Optimizer` (nst_ops.adam.Adam, nst_ops.lbfgs.LBFGS): evaluate the state's
point, push the row, step, and at a flush drop the images that stopped. It stops at the
evaluation budget or as soon as a row reaches `target_loss`, never evaluates more than
`iterations` times, and makes every decision on the device: the loss rows reach the Recorders
in blocks (nst_ops.deferred; every row on the CPU), so on a GPU Python enqueues iterations
ahead and the evaluation can be a captured graph (the evaluator's Compiler, which also runs
the optimizers' steps: nst_ops.compiling).

A batch of B images (pairs-per-gpu) runs together: every image keeps its own optimizer state
and stopping, so its loss rows are those of running it alone (up to float rounding of batched
convolutions); a stopped image leaves the batch at the next flush (its rows past the stop are
discarded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from nst_ops.adam import Adam
from nst_ops.compiling import Compiler
from nst_ops.deferred import DeferredRows, rows_per_flush
from nst_ops.evaluation import Evaluator
from nst_ops.lbfgs import LBFGS
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder

T = TypeVar("T")


class State(Protocol):
    """An optimizer's per-image state (nst_ops.state): what to evaluate next, the images to
    return, and the state without the images that stopped."""

    def point(self) -> Tensor: ...  # (B, C, H, W) in [0,1]
    def result(self) -> Tensor: ...  # (B, C, H, W) in [0,1]
    def select(self: T, keep: Tensor) -> T: ...


S = TypeVar("S", bound=State)


class Optimizer(Protocol[S]):
    """init(x (B, C, H, W), params per image) → state; step(state, loss rows (B, T + L),
    gradient (B, C·H·W) at state.point()) → state."""

    def init(self, x: Tensor, params: Sequence[StyleParams]) -> S: ...
    def step(self, state: S, rows: Tensor, g: Tensor) -> S: ...


# the `optimizer` parameter's values (nst_ops.params.Optimizer) → the optimizer
OPTIMIZER_TYPES: dict[str, Callable[[Compiler], Optimizer[Any]]] = {"adam": Adam, "lbfgs": LBFGS}


class _Live:
    """Which images of a batch are still running; `out` holds the results of those that
    stopped, by their index in the batch."""

    def __init__(self, recs: Sequence[Recorder], objective: StyleObjective) -> None:
        self.recs, self.objective = list(recs), objective
        self.index = list(range(len(recs)))
        self.out: list[Tensor | None] = [None] * len(recs)

    def stop(self, images: dict[int, Tensor], device: torch.device) -> Tensor:
        """Images b of `images` (by position among the live ones) end with that image; the
        objective keeps the others. Returns the kept positions (long, on `device`)."""
        for b, image in images.items():
            self.out[self.index[b]] = image.unsqueeze(0)
        keep = [b for b in range(len(self.index)) if b not in images]
        self.index = [self.index[b] for b in keep]
        if keep:
            self.objective = self.objective.select(keep)
        return torch.tensor(keep, dtype=torch.long, device=device)

    def current(self) -> list[Recorder]:
        return [self.recs[j] for j in self.index]

    def results(self, final: Tensor) -> list[Tensor]:
        for b, j in enumerate(self.index):
            self.out[j] = final[b : b + 1]
        return [t for t in self.out if t is not None]


def run(
    optimizer: Optimizer[S],
    x: Tensor,
    objective: StyleObjective,
    params: Sequence[StyleParams],
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> list[Tensor]:
    """params[0].iterations evaluations of the batch x (B, C, H, W) in [0,1] from
    optimizer.init. Returns B images (1, C, H, W): the state's result, or where an image
    stopped, its stop image (nst_ops.deferred)."""
    state, live = optimizer.init(x, params), _Live(recs, objective)
    rows = DeferredRows(state.point(), recs, rows_per_flush(x.device), evaluate.compiler)
    n = params[0].iterations
    for i in range(n):
        point = state.point()
        loss_rows, g = evaluate(point, live.objective)
        rows.push(loss_rows, point)
        state = optimizer.step(state, loss_rows, g)
        if rows.due() or i == n - 1:
            stops = rows.flush(live.current())
            if any(stops):
                keep = live.stop(rows.stop_images(stops, live.current()), x.device)
                state = state.select(keep)
                rows.keep(keep)
                if not live.index:
                    break
    return live.results(state.result())


def adam(
    x: Tensor,
    objective: StyleObjective,
    params: Sequence[StyleParams],
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> list[Tensor]:
    """`run` with projected Adam (nst_ops.adam): with ema_decay > 0 an image's result is the
    exponential moving average of its iterates (iterate averaging), started at x."""
    return run(Adam(evaluate.compiler), x, objective, params, recs, evaluate)


def lbfgs(
    x: Tensor,
    objective: StyleObjective,
    params: Sequence[StyleParams],
    recs: Sequence[Recorder],
    evaluate: Evaluator,
) -> list[Tensor]:
    """`run` with projected L-BFGS (nst_ops.lbfgs): the result is the last accepted point
    (always an evaluated one)."""
    return run(LBFGS(evaluate.compiler), x, objective, params, recs, evaluate)
