"""L-BFGS direction (compact form) against the inverse-Hessian recursion written out densely."""

from __future__ import annotations

import pytest
import torch

from nst_ops.lbfgs import LBFGSState, armijo_ok


def dense_direction(
    pairs: list[tuple[torch.Tensor, torch.Tensor]], g: torch.Tensor
) -> torch.Tensor:
    """−H g with H_0 = γI (γ = sᵀy/yᵀy of the newest pair) and, oldest pair first,
    H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ (Nocedal & Wright eq. 7.19)."""
    s_new, y_new = pairs[-1]
    n = g.numel()
    h = torch.eye(n, dtype=torch.float64) * float(s_new @ y_new / (y_new @ y_new))
    for s, y in pairs:
        rho = 1.0 / float(s @ y)
        left = torch.eye(n, dtype=torch.float64) - rho * torch.outer(s, y)
        h = left @ h @ left.T + rho * torch.outer(s, s)
    return -(h @ g)


@pytest.mark.parametrize("history", [3, 8])
def test_direction_equals_the_dense_bfgs_recursion(history: int) -> None:
    torch.manual_seed(0)
    n = 12
    a = torch.randn(n, n, dtype=torch.float64)
    hessian = a @ a.T + n * torch.eye(n, dtype=torch.float64)  # SPD: every pair is kept
    state = LBFGSState(history_size=history)
    pairs = []
    for _ in range(6):  # with history 3 the ring wraps: only the newest 3 pairs count
        s = torch.randn(n, dtype=torch.float64)
        y = hessian @ s
        state.update(s, y)
        pairs.append((s, y))
        g = torch.randn(n, dtype=torch.float64)
        d, step = state.direction(g)
        expected = dense_direction(pairs[-history:], g)
        assert step == 1.0
        assert torch.allclose(d, expected, rtol=1e-9, atol=1e-9)
        assert float(g @ d) < 0


def test_pairs_without_curvature_are_skipped_and_first_step_is_bounded() -> None:
    state = LBFGSState(history_size=4, first_step=0.1)
    g = torch.tensor([0.5, -2.0, 1.0], dtype=torch.float64)
    d, step = state.direction(g)
    assert torch.equal(d, -g) and step == pytest.approx(0.1 / 2.0)
    s = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    state.update(s, -s)  # sᵀy < 0: would make H indefinite
    assert state.count == 0
    state.update(s, 2 * s)
    assert state.count == 1


def test_armijo() -> None:
    assert armijo_ok(0.9, 1.0, 1.0, -1.0) and not armijo_ok(1.0, 1.0, 1.0, -1.0)
    assert not armijo_ok(float("nan"), 1.0, 1.0, -1.0)
