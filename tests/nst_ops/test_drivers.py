"""The optimisation loop (nst_ops.drivers.run) drives any optimizer written as ARCHITECTURE.md's
"how to add an optimizer" says: a per-image state with point/result/select, init and step. A
projected gradient descent written here, on Σ(x − 0.25)², gives the brute-force iterates, and
a batch's stopped image leaves the state while the other runs on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from nst_ops import drivers
from nst_ops.compiling import Compiler
from nst_ops.evaluation import Evaluator
from nst_ops.objective import TERM_NAMES, LossTerms
from nst_ops.params import OPTIMIZERS, StyleParams
from nst_ops.recorder import Recorder
from nst_ops.state import select_images, state

RATE = 0.1


class Quadratic:
    """Objective Σ(x − 0.25)² per image; its gradient is 2(x − 0.25)."""

    laplacian = None

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def __call__(self, image: Tensor) -> LossTerms:
        total = (image - 0.25).pow(2).flatten(1).sum(1)
        zero = torch.zeros_like(total)
        return LossTerms({name: zero for name in TERM_NAMES} | {"total": total}, zero[:, None])

    def select(self, keep: list[int]) -> Quadratic:
        return Quadratic(len(keep))


@state
@dataclass
class DescentState:
    x: Tensor
    steps: Tensor  # (B,) steps taken, per image

    def point(self) -> Tensor:
        return self.x

    def result(self) -> Tensor:
        return self.x

    def select(self, keep: Tensor) -> DescentState:
        return select_images(self, keep)


def descend(state: DescentState, g: Tensor) -> None:
    state.x.sub_(RATE * g.view_as(state.x)).clamp_(0, 1)
    state.steps.add_(1)


class Descent:
    def __init__(self, compiler: Compiler) -> None:
        self._descend = compiler.step(descend)

    def init(self, x: Tensor, params: Sequence[StyleParams]) -> DescentState:
        return DescentState(x.detach().clone(), torch.zeros(x.shape[0]))

    def step(self, state: DescentState, rows: Tensor, g: Tensor) -> DescentState:
        self._descend(state, g)
        return state


def test_every_optimizer_name_has_its_optimizer() -> None:
    assert set(drivers.OPTIMIZER_TYPES) == set(OPTIMIZERS)


def test_the_loop_runs_an_optimizer_written_to_the_recipe() -> None:
    params = StyleParams(iterations=6)
    rec = Recorder(params, None, 6)
    x = torch.full((1, 3, 2, 2), 0.9)
    (out,) = drivers.run(Descent(Compiler()), x, Quadratic(1), [params], [rec], Evaluator())  # type: ignore[arg-type]
    expected, totals = x.clone(), []
    for _ in range(6):  # brute force: evaluate, then step
        totals.append(float((expected - 0.25).pow(2).sum()))
        expected = (expected - RATE * 2 * (expected - 0.25)).clamp(0, 1)
    assert [float(r[0]) for r in rec.rows] == pytest.approx(totals, rel=1e-6)
    assert torch.allclose(out, expected, rtol=1e-6) and torch.equal(x, torch.full_like(x, 0.9))


def test_a_stopped_image_leaves_the_batch_with_its_first_image_at_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Image 0 reaches its target at row 2 (flushes every 3 rows: it stops at the flush after
    row 2 with the image of row 2); image 1 runs all 9 evaluations."""
    monkeypatch.setattr(drivers, "rows_per_flush", lambda device: 3)
    x = torch.stack([torch.full((3, 2, 2), 0.9), torch.full((3, 2, 2), 0.8)])
    start = float((x[0] - 0.25).pow(2).sum())
    row2 = start * (1 - 2 * RATE) ** 4  # the error shrinks by (1 − 2·rate) per step
    params = [StyleParams(iterations=9, target_loss=row2 * 1.0001), StyleParams(iterations=9)]
    recs = [Recorder(p, None, 9) for p in params]
    descent = Descent(Compiler())
    out = drivers.run(descent, x, Quadratic(2), params, recs, Evaluator())  # type: ignore[arg-type]
    assert recs[0].reached and len(recs[0].rows) == 3 and len(recs[1].rows) == 9
    expected0 = 0.25 + (0.9 - 0.25) * (1 - 2 * RATE) ** 2
    expected1 = 0.25 + (0.8 - 0.25) * (1 - 2 * RATE) ** 9
    assert torch.allclose(out[0], torch.full((1, 3, 2, 2), expected0), rtol=1e-5)
    assert torch.allclose(out[1], torch.full((1, 3, 2, 2), expected1), rtol=1e-5)
