"""Projected Adam (nst_ops.adam) against torch.optim.Adam plus the box projection, and the
bias-correction table a compiled step reads (nst_ops.compiling.StepTable)."""

from __future__ import annotations

import math

import pytest
import torch

from nst_ops.adam import Adam, AdamState, corrections, update
from nst_ops.compiling import Compiler, Inductor, StepTable
from nst_ops.params import StyleParams

CPU = torch.device("cpu")


def test_adam_step_is_torch_adam_then_the_box_projection() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 4)
    lrs = [0.02, 0.05]
    reference = [x[b : b + 1].clone().requires_grad_(True) for b in range(2)]
    optimizers = [torch.optim.Adam([p], lr=lrs[b]) for b, p in enumerate(reference)]
    adam = Adam()
    state = adam.init(x, [StyleParams(optimizer="adam", learning_rate=lr) for lr in lrs])
    for t in range(1, 31):
        g = torch.randn(2, 3 * 5 * 4)
        state = adam.step(state, torch.zeros(2, 1), g)
        assert state.t == t
        for b, (p, optimizer) in enumerate(zip(reference, optimizers, strict=True)):
            p.grad = g[b].view_as(p).clone()
            optimizer.step()
            with torch.no_grad():
                p.clamp_(0, 1)
        expected = torch.cat([p.detach() for p in reference])
        assert torch.allclose(state.point(), expected, rtol=1e-6, atol=1e-7)
        assert state.x.min() >= 0 and state.x.max() <= 1
    assert torch.equal(state.result(), state.x)  # ema_decay 0: the average is the iterate


def test_iterate_average_follows_its_recursion() -> None:
    torch.manual_seed(1)
    adam = Adam()
    params = StyleParams(optimizer="adam", learning_rate=0.01, ema_decay=0.9)
    state = adam.init(torch.rand(1, 1, 3, 3), [params])
    expected = state.x.clone()
    for _ in range(5):
        state = adam.step(state, torch.zeros(1, 1), torch.randn(1, 9))
        expected = 0.9 * expected + 0.1 * state.x
    assert torch.allclose(state.result(), expected, rtol=1e-6)


def test_select_keeps_the_chosen_images_of_every_tensor() -> None:
    adam = Adam()
    params = [StyleParams(optimizer="adam", learning_rate=lr) for lr in (0.1, 0.2, 0.3)]
    state = adam.step(
        adam.init(torch.rand(3, 1, 2, 2), params), torch.zeros(3, 1), torch.randn(3, 4)
    )
    kept = state.select(torch.tensor([2, 0]))
    assert isinstance(kept, AdamState) and kept.t == 1
    for name in ("x", "m", "v", "ema", "lr", "decay"):
        assert torch.equal(getattr(kept, name), getattr(state, name)[[2, 0]])
    assert kept.lr.flatten().tolist() == pytest.approx([0.3, 0.1])


@pytest.mark.parametrize("t", [1, 2, 1024, 1025, 5000])
def test_the_table_holds_each_steps_corrections(t: int) -> None:
    table = StepTable(corrections, CPU)
    first, second = table.at(t)
    assert first.dim() == second.dim() == 0
    assert float(first) == 1 - 0.9**t and float(second) == math.sqrt(1 - 0.999**t)
    assert table.table.shape[0] >= t
    assert float(table.at(1)[0]) == pytest.approx(0.1)  # earlier steps stay after growing


def test_eager_steps_take_floats_and_compiled_ones_the_table() -> None:
    assert Compiler().constants(corrections, CPU)(3) == corrections(3)
    values = Inductor(CPU).constants(corrections, CPU)(3)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values)


def test_table_corrections_give_the_float_corrections_step() -> None:
    torch.manual_seed(2)
    start = torch.rand(1, 3, 4, 4)
    params = [StyleParams(optimizer="adam", learning_rate=0.02)]
    states = [Adam().init(start, params) for _ in range(2)]
    table = StepTable(corrections, CPU)
    for t in range(1, 21):
        g = torch.randn(1, 48)
        update(states[0], g, *corrections(t))
        update(states[1], g, *table.at(t))
    assert torch.allclose(states[0].x, states[1].x, rtol=1e-6, atol=1e-7)
