"""One iteration's work: the objective's loss rows and its gradient at a batch of images, run
eagerly (`Evaluator`) or captured (`CapturedEvaluator`: torch.compile, CUDA graphs on a GPU).

On a GPU an eager iteration is ~200 kernel launches from Python, and Python, not the GPU, sets
the pace (measured on an H200 at 256–512 px: ~5.5–6.8 ms per objective+gradient eager against
0.8–1.9 ms captured; benchmarks.overhead_probe). Capturing replays the whole forward and backward
as one graph per (image shape, batch size, objective structure). The drivers never read a loss
on the host between iterations (nst_ops.deferred, nst_ops.lbfgs), so replays queue up.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from nst_ops import adam
from nst_ops.deferred import track
from nst_ops.lbfgs import accept_trial, next_trial
from nst_ops.objective import StyleObjective

Compile = Literal["auto", "on", "off"]
COMPILE_CHOICES: tuple[str, ...] = get_args(Compile)
DEFAULT_COMPILE: Compile = "auto"


def loss_rows(x: Tensor, objective: StyleObjective) -> Tensor:
    """Loss rows (B, T + L) (LossTerms.stacked; the total in column 0) at x (B, C, H, W) in
    [0,1], C = 1 (luminance) or 3. The drivers keep every evaluated image in [0,1], so there
    is no clamp here, deliberately: torch's clamp passes no gradient at the bound itself, so a
    pixel at exactly 0 or 1 (a trial step clamps there) would get a zero gradient and stay
    frozen for the rest of the run — a dark sky at 0 stalled Luan's stage 2 with the matting
    energy 10⁴× too high and left its pixels as speckle (benchmarks/RESULTS.md, issue 33)."""
    return objective(x.expand(-1, 3, -1, -1)).stacked()


class Evaluator:
    """Eager evaluation. `compile_s`: seconds this evaluator has spent compiling (0 here).
    `accept_trial`, `next_trial` (L-BFGS, nst_ops.lbfgs), `adam_step` (nst_ops.adam) and
    `track_rows` (nst_ops.deferred): the drivers' per-iteration bookkeeping, run as written
    here and compiled by CapturedEvaluator."""

    compile_s = 0.0
    accept_trial: Callable[..., Any] = staticmethod(accept_trial)
    next_trial: Callable[..., Any] = staticmethod(next_trial)
    track_rows: Callable[..., Any] = staticmethod(track)
    _adam_step: Callable[..., None] = staticmethod(adam.adam_step)

    def adam_step(self, *state: Tensor, t: int) -> None:
        """Adam's step t, in place (nst_ops.adam.adam_step; state: x, g, m, v, ema, lr, decay)."""
        self._adam_step(*state, *adam.corrections(t))

    def __call__(self, x: Tensor, objective: StyleObjective) -> tuple[Tensor, Tensor]:
        """(loss rows (B, T + L), gradient of each image's total (B, C·H·W)), both detached,
        at x in [0,1] (as the drivers keep it): the full gradient of the objective at x, also
        at pixels on the bounds; image b's gradient depends on image b alone."""
        x = x.detach().requires_grad_(True)
        rows = loss_rows(x, objective)
        (g,) = torch.autograd.grad(rows[:, 0].sum(), x)
        return rows.detach(), g.reshape(x.shape[0], -1)

    @staticmethod
    def forward(x: Tensor, objective: StyleObjective) -> Tensor:
        """Loss rows only (no gradient): the forward-only row of a returned image."""
        with torch.no_grad():
            return loss_rows(x, objective)


class CapturedEvaluator(Evaluator):
    """`loss_rows` under torch.compile: mode `reduce-overhead` (CUDA graphs) on a GPU,
    inductor's default on the CPU. One per process, reused across pairs: a later pair with the
    same image shape, batch size and objective structure replays the compiled graphs (the
    objective's targets and weights are graph inputs, not constants). Objectives with the
    matting Laplacian (a sparse matrix) run eagerly. The optimizers' bookkeeping compiles too,
    in inductor's default mode on both devices (its state is updated in place, which CUDA
    graphs would copy in and out): L-BFGS's ~180 small operations per iteration and Adam's
    ~35 become a few compiled calls. Compiled artefacts go to inductor's cache directory
    (TORCHINDUCTOR_CACHE_DIR), which later processes on the machine reuse."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        mode = "reduce-overhead" if self.cuda else "default"
        config: Any = torch._dynamo.config
        limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, limit, max(64, getattr(config, limit)))  # one graph per shape and batch
        self.compiled = torch.compile(loss_rows, mode=mode, dynamic=False)
        self.compile_s = 0.0
        from torch._dynamo.utils import counters

        self._counters = counters  # ["stats"]["unique_graphs"]: graphs compiled in this process
        # the pair's and the next direction's products fused into one pass over the buffer
        ahead = functools.partial(accept_trial, ahead=True)
        self.accept_trial = self._timed(torch.compile(ahead, dynamic=False))
        self.next_trial = self._timed(torch.compile(next_trial, dynamic=False))
        self._adam_step = self._timed(torch.compile(adam.adam_step, dynamic=False))
        self.track_rows = self._timed(torch.compile(track, dynamic=False))
        self._corrections: dict[torch.device, adam.CorrectionTable] = {}
        self._timed_replay = self._timed(self._replay)

    def __call__(self, x: Tensor, objective: StyleObjective) -> tuple[Tensor, Tensor]:
        if objective.laplacian is not None:
            return super().__call__(x, objective)
        return self._timed_replay(x, objective)  # type: ignore[no-any-return]

    def adam_step(self, *state: Tensor, t: int) -> None:
        device = state[0].device
        if device not in self._corrections:
            self._corrections[device] = adam.CorrectionTable(device)
        self._adam_step(*state, *self._corrections[device].at(t))

    def _replay(self, x: Tensor, objective: StyleObjective) -> tuple[Tensor, Tensor]:
        if self.cuda:  # a new iteration: earlier replays' outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
        x = x.detach().requires_grad_(True)
        rows = self.compiled(x, objective)
        (g,) = torch.autograd.grad(rows[:, 0].sum(), x)
        # graph outputs live in the graph's memory: copy what the drivers keep
        return rows.detach().clone(), g.reshape(x.shape[0], -1).clone()

    def _graphs(self) -> int:
        return int(self._counters["stats"]["unique_graphs"])

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn, adding the time of any call that compiled a new graph to `compile_s`."""

        def call(*args: Any) -> Any:
            before, start = self._graphs(), time.perf_counter()
            out = fn(*args)
            if self._graphs() != before:
                if self.cuda:  # the arguments' device, which need not be the current one
                    torch.cuda.synchronize(next(a for a in args if isinstance(a, Tensor)).device)
                self.compile_s += time.perf_counter() - start
            return out

        return call


def make_evaluator(compile: str, device: torch.device) -> Evaluator:
    """The evaluator of the `compile` run setting: on | off | auto (on for CUDA; off for the
    CPU, where compiling does not pay: benchmarks.overhead_probe)."""
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile: must be one of {', '.join(COMPILE_CHOICES)}; got {compile!r}")
    if compile == "on" or (compile == "auto" and device.type == "cuda"):
        return CapturedEvaluator(device)
    return Evaluator()
