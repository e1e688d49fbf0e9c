"""Projected L-BFGS (Nocedal & Wright 2006, Alg. 7.4) for a batch of images, every decision a
tensor operation on the images' device: no host round trip per iteration, so a GPU driver can
enqueue iterations ahead while the loss rows go to the host in blocks (nst_ops.deferred).

`LBFGS.init` / `LBFGS.step` over an `LBFGSState` (nst_ops.drivers runs them). Each image keeps
its own curvature pairs (nst_ops.lbfgs_history), step and line search, in lockstep: one
evaluation of every image per iteration. A step decides on the trial point just evaluated
(`accept_trial`: Armijo along the actual, clamped displacement), stores the curvature pair
(LBFGSHistory.write, in place, between the step's two functions) and picks the next trial point
(`next_trial`: a new direction where accepted, half the step where not). Every trial point is
clamp(x + t·d, 0, 1): the iterate always stays in [0,1].

Departure from torch.optim.LBFGS, deliberate: its no-line-search mode takes a raw −g step when
the first curvature pair is rejected (it diverges on Gram losses from a content init), and its
strong-Wolfe mode can overrun the evaluation budget inside a line search. Here the line search
is Armijo backtracking with one evaluation per trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from nst_ops import compiling
from nst_ops.compiling import Compiler
from nst_ops.lbfgs_history import FIRST_STEP, LBFGSHistory
from nst_ops.params import StyleParams
from nst_ops.state import select_images, state

__all__ = ["FIRST_STEP", "LBFGS", "LBFGSHistory", "LBFGSState", "MEMORY", "armijo"]

MEMORY = 100  # curvature pairs kept, m, whatever the iterations: one buffer shape everywhere
C1 = 1e-4  # Armijo's sufficient-decrease constant


@state
@dataclass
class LBFGSState:
    """Per image, flat (B, n) with n = C·H·W: x the last accepted point (the result), with its
    gradient g and total loss f (B,) float64; d the search direction and `step` (B,) float64
    its step length; `trial` = clamp(x + step·d, 0, 1), the point evaluated next; the curvature
    `history`; `shape` (C, H, W); `started`: False until the start point's evaluation."""

    x: Tensor
    g: Tensor
    f: Tensor
    d: Tensor
    step: Tensor
    trial: Tensor
    history: LBFGSHistory
    shape: tuple[int, ...]
    started: bool = False

    def point(self) -> Tensor:
        return self.trial.view(-1, *self.shape)

    def result(self) -> Tensor:
        return self.x.view(-1, *self.shape)

    def select(self, keep: Tensor) -> LBFGSState:
        return select_images(self, keep)


class Accepted(NamedTuple):
    """`accept_trial`'s decision: the iterate after it (x, g, f), accept (B,), the pair's
    buffer rows and their values for LBFGSHistory.write, and where computed (`fuse_products`)
    the written buffer's products with the new g (B, 2m), valid where accepted."""

    x: Tensor
    g: Tensor
    f: Tensor
    accept: Tensor
    rows: Tensor
    values: Tensor
    products: Tensor | None


class Trial(NamedTuple):
    """`next_trial`'s direction d, step (B,) float64 and point clamp(x + step·d, 0, 1)."""

    d: Tensor
    step: Tensor
    point: Tensor


def armijo(f_new: Tensor, f: Tensor, slope: Tensor) -> Tensor:
    """Per image (B,): f(x + s) ≤ f(x) + c1·∇fᵀs with a descent slope ∇fᵀs < 0 and a finite
    f(x + s) (float64 inputs; s is the actual, clamped displacement)."""
    return torch.isfinite(f_new) & (f_new <= f + C1 * slope) & (slope < 0)


def trial(x: Tensor, d: Tensor, step: Tensor) -> Tensor:
    """The next point to evaluate, clamp(x + t·d, 0, 1) (B, n), for steps t (B,)."""
    return (x + step.to(x.dtype)[:, None] * d).clamp_(0, 1)


def accept_trial(state: LBFGSState, g_new: Tensor, f_new: Tensor) -> Accepted:
    """Armijo's decision on the evaluated state.trial, with its gradient g_new (B, n) and
    total loss f_new (B,), from the iterate state.x, g, f. Records the curvature pair in the
    history's inner products (LBFGSHistory.record); reads the (B, 2m, n) buffer, never writes
    it. With `fuse_products` the products with y and with g_new are two reductions that one
    pass over the buffer computes: two reads of it per iteration instead of three."""
    history, x, g = state.history, state.x, state.g
    f_new, s = f_new.double(), state.trial - x
    accept = armijo(f_new, state.f, (g * s).sum(1).double())
    y = g_new - g
    products = None
    if compiling.fuse_products():  # [S; Y]·y and [S; Y]·g_new, side by side
        with_y, with_g = history.products(y), history.products(g_new)
        rows, values = history.new_rows(s, y, *history.record(s, y, accept, with_y))
        products = history.once_written(with_g, g_new, rows, values)
    else:
        rows, values = history.new_rows(s, y, *history.record(s, y, accept))
    x = torch.where(accept[:, None], state.trial, x)
    g = torch.where(accept[:, None], g_new, g)
    f = torch.where(accept, f_new, state.f)
    return Accepted(x, g, f, accept, rows, values, products)


def next_trial(state: LBFGSState, accepted: Accepted) -> Trial:
    """After `accept_trial` and LBFGSHistory.write: where accepted, a new direction and step
    from the history (with accept_trial's products, if any), else the same direction at half
    the step (backtracking)."""
    accept = accepted.accept
    d_new, step_new = state.history.direction(accepted.g, accept, accepted.products)
    d = torch.where(accept[:, None], d_new, state.d)
    step = torch.where(accept, step_new, 0.5 * state.step)
    return Trial(d, step, trial(accepted.x, d, step))


@contextmanager
def ieee_products() -> Iterator[None]:
    """CUDA float32 matmuls in IEEE arithmetic within, whatever the process's setting (which
    `--precision tf32` turns to TF32 for the objective), restored after. Deliberate: the
    history's batched products with the (B, 2m, n) buffer (R, YᵀY, Sᵀg, Yᵀg) and the
    direction's combination of the pairs would otherwise round their inputs to TF32's 10-bit
    mantissa (~5e-4 relative each), beside sᵀy and yᵀy computed in IEEE, and L-BFGS amplifies
    such differences (nst_ops.lbfgs_history._dot). Wrap the calls, not the code: a compiled
    function is compiled and run under the same setting (inductor keys its cache on it)."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32 = before


class LBFGS:
    """Projected L-BFGS; `compiler` runs `accept_trial` and `next_trial` (eagerly by default)."""

    def __init__(self, compiler: Compiler | None = None) -> None:
        compiler = compiler or Compiler()
        self._accept, self._next = compiler.step(accept_trial), compiler.step(next_trial)

    def init(self, x: Tensor, params: Sequence[StyleParams]) -> LBFGSState:
        """The state at the start images x (B, C, H, W) (clamped to [0,1]), to be evaluated
        first; no pairs yet (the params need nothing per image)."""
        shape = tuple(x.shape[1:])
        x = x.detach().reshape(x.shape[0], -1).clamp(0, 1)
        history = LBFGSHistory.empty(x.shape[0], x.shape[1], MEMORY, x)
        zero, none = (
            torch.zeros_like(x),
            torch.zeros(x.shape[0], dtype=torch.float64, device=x.device),
        )
        return LBFGSState(x, zero, none, zero, none, x, history, shape)

    def step(self, state: LBFGSState, rows: Tensor, g: Tensor) -> LBFGSState:
        """From the loss rows (B, T + L) and gradient g (B, n) at state.trial: the state with
        the decision on it and the next trial point (the first: steepest descent from x)."""
        if not state.started:
            return self._start(state, rows, g)
        with ieee_products():  # TF32 (--precision tf32) is for the objective, not these
            accepted = self._accept(state, g, rows[:, 0])
            state.history.write(accepted.rows, accepted.values)  # in place, between the two
            d, step, point = self._next(state, accepted)
        x, g, f = accepted.x, accepted.g, accepted.f
        return dataclasses.replace(state, x=x, g=g, f=f, d=d, step=step, trial=point)

    def _start(self, state: LBFGSState, rows: Tensor, g: Tensor) -> LBFGSState:
        everyone = torch.ones(g.shape[0], dtype=torch.bool, device=g.device)
        with ieee_products():
            d, step = state.history.direction(g, everyone)
        f = rows[:, 0].double()
        point = trial(state.x, d, step)
        return dataclasses.replace(state, g=g, f=f, d=d, step=step, trial=point, started=True)
