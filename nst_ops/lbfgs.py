"""A small L-BFGS (Nocedal & Wright 2006, Alg. 7.4) with Armijo backtracking, written so that
every objective+gradient evaluation is one iteration of the loss table and an evaluation budget
is never exceeded.

Departure from torch.optim.LBFGS, deliberate: its no-line-search mode takes a raw −g step when
the first curvature pair is rejected (it diverges on Gram losses from a content init), and its
strong-Wolfe mode can overrun the evaluation budget inside a line search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class LBFGSState:
    """Curvature pairs (s_k, y_k) and the step to try next. Tensors are flat (n,)."""

    history_size: int = 100
    first_step: float = 0.1  # max pixel change of the first, steepest-descent step
    s: list[Tensor] = field(default_factory=list)
    y: list[Tensor] = field(default_factory=list)

    def reset(self) -> None:
        self.s.clear()
        self.y.clear()

    def update(self, s: Tensor, y: Tensor) -> None:
        """Store (s, y) when the curvature condition sᵀy > 0 holds (else skip, keeping H PD)."""
        sy = float(s.dot(y))
        if sy > 1e-10 * float(y.dot(y)):
            self.s.append(s)
            self.y.append(y)
            if len(self.s) > self.history_size:
                self.s.pop(0)
                self.y.pop(0)

    def direction(self, g: Tensor) -> tuple[Tensor, float]:
        """Search direction d = −H g (two-loop recursion) and the initial step length."""
        if not self.s:
            return -g, self.first_step / float(g.abs().max().clamp_min(1e-30))
        q = g.clone()
        alphas = []
        for s, y in zip(reversed(self.s), reversed(self.y), strict=True):
            alpha = s.dot(q) / y.dot(s)
            q.sub_(alpha * y)
            alphas.append(alpha)
        s_last, y_last = self.s[-1], self.y[-1]
        q.mul_(s_last.dot(y_last) / y_last.dot(y_last))
        for (s, y), alpha in zip(zip(self.s, self.y, strict=True), reversed(alphas), strict=True):
            beta = y.dot(q) / y.dot(s)
            q.add_((alpha - beta) * s)
        d = q.neg_()
        if float(g.dot(d)) >= 0:  # not a descent direction: restart from steepest descent
            self.reset()
            return self.direction(g)
        return d, 1.0


def armijo_ok(f_new: float, f: float, step: float, slope: float, c1: float = 1e-4) -> bool:
    """Sufficient-decrease condition f(x + t·d) ≤ f(x) + c1·t·∇fᵀd."""
    return math.isfinite(f_new) and f_new <= f + c1 * step * slope
