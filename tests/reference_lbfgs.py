"""The host-side L-BFGS that nst_ops ran before its device-side rewrite (main e23344b), kept as
the reference that nst_ops.lbfgs / nst_ops.drivers.lbfgs are tested against: one LBFGSState
per image with the m×m algebra in numpy on the host, and a driver that reads every loss and
Armijo slope on the host each iteration (Nocedal & Wright 2006, Alg. 7.4; compact form of
Byrd, Nocedal & Schnabel 1994)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch
from numpy.typing import NDArray
from torch import Tensor

from nst_ops.evaluation import Evaluator
from nst_ops.lbfgs import MEMORY
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder
from nst_ops.state import per_image


class _HostLive:
    """Which images still run, each with the best finite image of its rows so far (the stop
    image after a divergence; the evaluated image at a target), decided on the host row by
    row as the former drivers did."""

    def __init__(self, recs: Sequence[Recorder], objective: StyleObjective) -> None:
        self.recs, self.objective = list(recs), objective
        self.index = list(range(len(recs)))
        self.out: list[Tensor | None] = [None] * len(recs)
        self.best: list[tuple[float, Tensor] | None] = [None] * len(recs)

    def current(self) -> list[Recorder]:
        return [self.recs[j] for j in self.index]

    def record(self, host: Tensor, x: Tensor) -> list[bool]:
        """Record row b of host (B, T + L) of image x[b]; the stop flags."""
        stops = []
        for b, j in enumerate(self.index):
            stops.append(self.recs[j].record(host[b]))
            total, best = float(host[b, 0]), self.best[j]
            if math.isfinite(total) and bool(torch.isfinite(host[b]).all()):
                if best is None or total < best[0]:
                    self.best[j] = (total, x[b].detach().clone())
        return stops

    def drop(self, stops: list[bool], at: Tensor, *tensors: Tensor) -> list[Tensor]:
        """Stopped images end at `at` (after a divergence: their best finite image); returns
        `tensors` without their rows."""
        if not any(stops):
            return list(tensors)
        keep = [b for b, stop in enumerate(stops) if not stop]
        for b, stop in enumerate(stops):
            j, best = self.index[b], self.best[self.index[b]]
            if stop:
                diverged = self.recs[j].diverged_at is not None and best is not None
                self.out[j] = (best[1] if diverged and best else at[b]).view_as(at[b])[None]
        self.index = [self.index[b] for b in keep]
        if keep:
            self.objective = self.objective.select(keep)
        rows = torch.tensor(keep, dtype=torch.long, device=at.device)
        return [t.index_select(0, rows) for t in tensors]

    def results(self, final: Tensor) -> list[Tensor]:
        for b, j in enumerate(self.index):
            self.out[j] = final[b : b + 1]
        return [t for t in self.out if t is not None]


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


def lbfgs_host(
    x: Tensor, objective: StyleObjective, params: Sequence[StyleParams], recs: Sequence[Recorder]
) -> list[Tensor]:
    """The former nst_ops.drivers.lbfgs (same contract), every decision on the host. Its
    memory is the device L-BFGS's (it was min(100, iterations); the same pairs while no ring
    wraps, but other matrix sizes round differently, which L-BFGS amplifies)."""
    shape, live, evaluate = x.shape[1:], _HostLive(recs, objective), Evaluator()
    states = [LBFGSState(MEMORY) for _ in recs]
    stop = recs[0].evaluations + params[0].iterations
    x = x.detach().reshape(x.shape[0], -1).clamp(0, 1)
    rows, g = evaluate(x.view(-1, *shape), objective)
    host = rows.double().cpu()
    stops = live.record(host, x)
    f = _kept(host[:, 0].tolist(), stops)
    x, g = live.drop(stops, x, x, g)
    pairs = [states[j].direction(g[b]) for b, j in enumerate(live.index)]
    steps = [step for _, step in pairs]
    d = torch.stack([d for d, _ in pairs]) if pairs else g
    while live.index and live.current()[0].evaluations < stop:
        x_new = (x + per_image(steps, x) * d).clamp_(0, 1)
        rows, g_new = evaluate(x_new.view(-1, *shape), live.objective)
        s = x_new - x
        host = torch.cat([rows.double(), (g * s).sum(1).double()[:, None]], dim=1).cpu()
        stops = live.record(host[:, :-1], x_new)
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
