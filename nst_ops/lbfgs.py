"""A small L-BFGS (Nocedal & Wright 2006, Alg. 7.4) with Armijo backtracking, written so that
every objective+gradient evaluation is one iteration of the loss table and an evaluation budget
is never exceeded.

Departure from torch.optim.LBFGS, deliberate: its no-line-search mode takes a raw −g step when
the first curvature pair is rejected (it diverges on Gram losses from a content init), and its
strong-Wolfe mode can overrun the evaluation budget inside a line search.

The direction −H g uses the compact representation of Byrd, Nocedal & Schnabel (1994), equal
to the two-loop recursion in exact arithmetic: two matrix-vector products with the stored pairs
and m×m algebra on the host, instead of ~4m small vector operations (on a GPU, 4m kernel
launches per iteration dominated the cost of a VGG forward/backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch
from numpy.typing import NDArray
from torch import Tensor


@dataclass
class LBFGSState:
    """Up to `history_size` curvature pairs (s_k, y_k), flat (n,), in one device buffer
    (rows [0, m): s, rows [m, 2m): y, ring order) with their inner products on the host."""

    history_size: int = 100
    first_step: float = 0.1  # max pixel change of the first, steepest-descent step
    count: int = 0  # pairs stored
    head: int = 0  # slot of the oldest pair once the ring is full
    buffer: Tensor | None = None
    sy: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))  # s_i·y_j by slot
    yy: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))  # y_i·y_j by slot

    def reset(self) -> None:
        self.count, self.head = 0, 0

    def _slots(self) -> list[int]:
        """Slots from the oldest pair to the newest."""
        m = self.history_size
        return [(self.head + k) % m for k in range(self.count)]

    def update(self, s: Tensor, y: Tensor) -> None:
        """Store (s, y) when the curvature condition sᵀy > 0 holds (else skip, keeping H PD)."""
        m = self.history_size
        if self.buffer is None:
            self.buffer = s.new_zeros((2 * m, s.numel()))
            self.sy, self.yy = np.zeros((m, m)), np.zeros((m, m))
        products = torch.cat([self.buffer @ y, torch.stack([s.dot(y), y.dot(y)])])
        host = products.double().cpu().numpy()  # one transfer: [S·y, Y·y, s·y, y·y]
        sy, yy = host[2 * m], host[2 * m + 1]
        if not sy > 1e-10 * yy:
            return
        if self.count < m:
            slot = self.count
            self.count += 1
        else:
            slot, self.head = self.head, (self.head + 1) % m
        self.buffer[slot].copy_(s)
        self.buffer[m + slot].copy_(y)
        self.sy[:, slot] = host[:m]  # s_i·y_new (stale entries of a reused slot are never read)
        self.yy[:, slot] = self.yy[slot, :] = host[m : 2 * m]
        self.sy[slot, slot], self.yy[slot, slot] = sy, yy

    def direction(self, g: Tensor) -> tuple[Tensor, float]:
        """Search direction d = −H g and the initial step length (1, or a steepest-descent
        step of `first_step` max pixel change without pairs)."""
        if self.count == 0 or self.buffer is None:
            return -g, self.first_step / float(g.abs().max().clamp_min(1e-30))
        m, slots = self.history_size, self._slots()
        y_slots = [m + i for i in slots]
        products = torch.cat([self.buffer @ g, g.dot(g)[None]]).double().cpu().numpy()
        a, b = products[slots], products[y_slots]
        newest = slots[-1]
        gamma = self.sy[newest, newest] / self.yy[newest, newest]  # H_0 = γ I
        r = np.triu(self.sy[np.ix_(slots, slots)])  # R_ij = s_i·y_j, i ≤ j (chronological)
        u = scipy.linalg.solve_triangular(r, a, lower=False)
        middle = np.diag(np.diag(r)) + gamma * self.yy[np.ix_(slots, slots)]
        p = scipy.linalg.solve_triangular(r, middle @ u - gamma * b, trans="T", lower=False)
        q = -gamma * u
        g_dot_hg = gamma * products[-1] + a @ p + b @ q  # gᵀH g (> 0 when H is PD)
        coefficients = np.zeros(2 * m)
        coefficients[slots] = p
        coefficients[y_slots] = q
        weights = torch.from_numpy(coefficients).to(g.device, g.dtype)
        d = torch.addmv(g, self.buffer.t(), weights, beta=gamma).neg_()
        if not (math.isfinite(g_dot_hg) and g_dot_hg > 0):  # not a descent direction: restart
            self.reset()
            return self.direction(g)
        return d, 1.0


def armijo_ok(f_new: float, f: float, step: float, slope: float, c1: float = 1e-4) -> bool:
    """Sufficient-decrease condition f(x + t·d) ≤ f(x) + c1·t·∇fᵀd."""
    return math.isfinite(f_new) and f_new <= f + c1 * step * slope
