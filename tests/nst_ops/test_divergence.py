"""A non-finite loss stops the pair and keeps the best finite image (both optimizers)."""

from __future__ import annotations

import pytest
import torch

from nst_ops.drivers import adam, lbfgs
from nst_ops.evaluation import Evaluator
from nst_ops.objective import TERM_NAMES, LossTerms
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder


class Blows:
    """Objective Σ(x − 0.25)², turning NaN from evaluation `at` on."""

    laplacian = None  # no matting term

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, image: torch.Tensor) -> LossTerms:
        self.calls += 1
        total = (image - 0.25).pow(2).flatten(1).sum(1)
        if self.calls > self.at:
            total = total * float("nan")
        zero = torch.zeros_like(total)
        values = {name: zero for name in TERM_NAMES} | {"total": total}
        return LossTerms(values, zero[:, None])


@pytest.mark.parametrize("driver", [adam, lbfgs])
def test_divergence_keeps_best_finite_image(driver) -> None:
    params = StyleParams(iterations=20, optimizer="adam", learning_rate=0.05)
    rec = Recorder(params, None, 20)
    x0 = torch.full((1, 3, 4, 4), 0.9)
    (out,) = driver(x0, Blows(at=6), [params], [rec], Evaluator())
    assert rec.diverged_at == 6 and len(rec.rows) == 7
    totals = [float(r[0]) for r in rec.rows[:6]]
    best = min(totals)
    assert float((out - 0.25).pow(2).sum()) == pytest.approx(best, rel=1e-6)
    assert best < totals[0]
