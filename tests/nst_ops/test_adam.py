"""Projected Adam's update (nst_ops.adam) against torch.optim.Adam plus the box projection, and
the bias-correction table the compiled update reads."""

from __future__ import annotations

import math

import pytest
import torch

from nst_ops.adam import CorrectionTable, adam_step, corrections


def test_adam_step_is_torch_adam_then_the_box_projection() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 4)
    lrs = torch.tensor([0.02, 0.05]).view(2, 1, 1, 1)
    reference = [x[b : b + 1].clone().requires_grad_(True) for b in range(2)]
    optimizers = [torch.optim.Adam([p], lr=float(lrs[b])) for b, p in enumerate(reference)]
    m, v, ema = torch.zeros_like(x), torch.zeros_like(x), x.clone()
    decay = torch.zeros(2, 1, 1, 1)
    for t in range(1, 31):
        g = torch.randn(2, 3 * 5 * 4)
        adam_step(x, g, m, v, ema, lrs, decay, *corrections(t))
        for b, (p, optimizer) in enumerate(zip(reference, optimizers, strict=True)):
            p.grad = g[b].view_as(p).clone()
            optimizer.step()
            with torch.no_grad():
                p.clamp_(0, 1)
        expected = torch.cat([p.detach() for p in reference])
        assert torch.allclose(x, expected, rtol=1e-6, atol=1e-7)
        assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(ema, x)  # ema_decay 0: the average is the iterate


def test_iterate_average_follows_its_recursion() -> None:
    torch.manual_seed(1)
    x = torch.rand(1, 1, 3, 3)
    m, v, ema = torch.zeros_like(x), torch.zeros_like(x), x.clone()
    lr, decay = torch.full((1, 1, 1, 1), 0.01), torch.full((1, 1, 1, 1), 0.9)
    expected = x.clone()
    for t in range(1, 6):
        adam_step(x, torch.randn(1, 9), m, v, ema, lr, decay, *corrections(t))
        expected = 0.9 * expected + 0.1 * x
    assert torch.allclose(ema, expected, rtol=1e-6)


@pytest.mark.parametrize("t", [1, 2, 1024, 1025, 5000])
def test_the_table_holds_each_steps_corrections(t: int) -> None:
    table = CorrectionTable(torch.device("cpu"))
    first, second = table.at(t)
    assert first.dim() == second.dim() == 0
    assert float(first) == 1 - 0.9**t and float(second) == math.sqrt(1 - 0.999**t)
    assert table.table.shape[0] >= t
    assert float(table.at(1)[0]) == pytest.approx(0.1)  # earlier steps stay after growing


def test_table_corrections_give_the_float_corrections_step() -> None:
    torch.manual_seed(2)
    start = torch.rand(1, 3, 4, 4)
    state = [start.clone(), start.clone()]
    moments = [(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)) for _ in range(2)]
    lr, decay = torch.full((1, 1, 1, 1), 0.02), torch.zeros(1, 1, 1, 1)
    table = CorrectionTable(torch.device("cpu"))
    for t in range(1, 21):
        g = torch.randn(1, 48)
        adam_step(state[0], g, *moments[0], state[0].clone(), lr, decay, *corrections(t))
        adam_step(state[1], g, *moments[1], state[1].clone(), lr, decay, *table.at(t))
    assert torch.allclose(state[0], state[1], rtol=1e-6, atol=1e-7)
