"""Compiling, in one place: a `Compiler` runs the objective and the optimizers' steps as written
(`Compiler`, eager) or under torch.compile (`Inductor`). Nothing else in nst_ops knows which;
every numeric difference between the two lives in this module, with its reason:

- `row_products`: a multiply-reduce when compiled (inductor fuses several over one buffer into
  one pass), one batched BLAS product eagerly (the host reference's rounding, which eager loss
  rows match bit for bit: tests/nst_ops/test_lbfgs.py).
- `fuse_products`: True while compiling, so L-BFGS computes the next direction's products in the
  same pass over its buffer as the curvature pair's (nst_ops.lbfgs.accept_trial); eagerly that
  saves no read and would change the rounding.
- `Compiler.constants`: a step's scalars (Adam's bias corrections) as Python floats eagerly, as
  0-dim device tensors when compiled (a new float constant at every step would recompile, and a
  host-to-device copy per step would make the host wait for the device).

The optimizers' steps are written so that a compiled step only reads large buffers: what writes
one in place (L-BFGS's history) runs between two steps (a compiled in-place write of a graph
input would copy the buffer).

On a GPU an eager iteration is ~200 kernel launches from Python, and Python, not the GPU, sets
the pace (measured on an H200 at 256–512 px: ~5.5–6.8 ms per objective+gradient eager against
0.8–1.9 ms captured; benchmarks.overhead_probe). `Inductor` captures the objective's forward and
backward as one CUDA graph per (image shape, batch size, objective structure) and compiles the
steps in inductor's default mode (their state is updated in place, which CUDA graphs would copy
in and out): L-BFGS's ~180 small operations per iteration and Adam's ~35 become a few calls.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Any])
RowsFn = Callable[[Tensor, Any], Tensor]
RowsAndGradient = Callable[[Tensor, Any], tuple[Tensor, Tensor]]


def rows_and_gradient(fn: RowsFn, x: Tensor, objective: Any) -> tuple[Tensor, Tensor]:
    """(rows (B, K) = fn(x, objective), the gradient of Σ_b rows[b, 0] w.r.t. x (B, C·H·W)),
    both detached, at x (B, C, H, W): image b's gradient is that of its own total."""
    x = x.detach().requires_grad_(True)
    rows = fn(x, objective)
    (g,) = torch.autograd.grad(rows[:, 0].sum(), x)
    return rows.detach(), g.reshape(x.shape[0], -1)


def row_products(rows: Tensor, v: Tensor) -> Tensor:
    """rows (B, R, n) times v (B, n): (B, R) float64. Eager, one batched product (BLAS or
    cuBLAS). Compiled, a multiply-reduce instead, deliberately: inductor fuses several over
    the same rows into one pass (separate cuBLAS calls would each read the rows), generates
    it without a (B, R, n) temporary, and splits the long reduction over n across a GPU's
    multiprocessors itself."""
    if torch.compiler.is_compiling():
        return (rows * v.unsqueeze(1)).sum(2).double()
    return torch.bmm(rows, v.unsqueeze(2)).squeeze(2).double()


def fuse_products() -> bool:
    """Whether a step computes products it will need later in the same pass as others over
    the same buffer: while compiling (see the module's docstring)."""
    return bool(torch.compiler.is_compiling())


class StepTable:
    """fn(t) for t = 1, 2, … as 0-dim float64 views of one tensor on a device: step t reads
    row t − 1 (no transfer per step); grown by doubling, one transfer per doubling."""

    def __init__(self, fn: Callable[[int], tuple[float, ...]], device: torch.device) -> None:
        self.fn, self.device = fn, device
        self.table = torch.zeros((0, 0), dtype=torch.float64, device=device)

    def at(self, t: int) -> tuple[Tensor, ...]:
        if t > self.table.shape[0]:
            n = max(2 * self.table.shape[0], t, 1024)
            values = [self.fn(k) for k in range(1, n + 1)]
            self.table = torch.tensor(values, dtype=torch.float64, device=self.device)
        return tuple(self.table[t - 1])


class Compiler:
    """Eager: the objective and the steps run as written. `compile_s`: seconds spent
    compiling (0 here)."""

    compile_s = 0.0

    def objective(self, fn: RowsFn) -> RowsAndGradient:
        """fn's rows and gradient (`rows_and_gradient`)."""
        return functools.partial(rows_and_gradient, fn)

    def step(self, fn: F) -> F:
        """An optimizer's or the row tracker's step function, run as written."""
        return fn

    def constants(
        self, fn: Callable[[int], tuple[float, ...]], device: torch.device
    ) -> Callable[[int], tuple[float | Tensor, ...]]:
        """The scalars of step t, fn(t), in the form a step takes them (floats here)."""
        return fn


class Inductor(Compiler):
    """torch.compile: the objective in mode `reduce-overhead` (CUDA graphs) on a GPU, inductor's
    default on the CPU; the steps in the default mode. One per process, reused across pairs: a
    later pair with the same image shape, batch size and objective structure replays the
    compiled graphs (the objective's targets and weights are graph inputs, not constants).
    Compiled artefacts go to inductor's cache directory (TORCHINDUCTOR_CACHE_DIR), which later
    processes on the machine reuse."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.mode = "reduce-overhead" if self.cuda else "default"
        config: Any = torch._dynamo.config
        limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, limit, max(64, getattr(config, limit)))  # one graph per shape and batch
        from torch._dynamo.utils import counters

        self._counters = counters  # ["stats"]["unique_graphs"]: graphs compiled in this process
        self.compile_s = 0.0
        self._steps: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._tables: dict[tuple[Callable[..., Any], torch.device], StepTable] = {}

    def objective(self, fn: RowsFn) -> RowsAndGradient:
        compiled = torch.compile(fn, mode=self.mode, dynamic=False)

        def replay(x: Tensor, objective: Any) -> tuple[Tensor, Tensor]:
            if self.cuda:  # a new iteration: earlier replays' outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
            rows, g = rows_and_gradient(compiled, x, objective)
            return rows.clone(), g.clone()  # graph outputs live in the graph's memory

        return cast(RowsAndGradient, self._timed(replay))

    def step(self, fn: F) -> F:
        if fn not in self._steps:  # one compiled function per step, whoever asks
            self._steps[fn] = self._timed(torch.compile(fn, dynamic=False))
        return cast(F, self._steps[fn])

    def constants(
        self, fn: Callable[[int], tuple[float, ...]], device: torch.device
    ) -> Callable[[int], tuple[float | Tensor, ...]]:
        if (fn, device) not in self._tables:
            self._tables[fn, device] = StepTable(fn, device)
        return self._tables[fn, device].at

    def _graphs(self) -> int:
        return int(self._counters["stats"]["unique_graphs"])

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn, adding the time of any call that compiled a new graph to `compile_s`."""

        def call(*args: Any) -> Any:
            before, start = self._graphs(), time.perf_counter()
            out = fn(*args)
            if self._graphs() != before:
                if self.cuda:  # the arguments' device, which need not be the current one
                    torch.cuda.synchronize(_device_of(args))
                self.compile_s += time.perf_counter() - start
            return out

        return call


def _device_of(args: tuple[Any, ...]) -> torch.device:
    """The device of the first tensor among args (or the first tensor field of a state)."""
    for a in args:
        if isinstance(a, Tensor):
            return a.device
        for value in getattr(a, "__dict__", {}).values():
            if isinstance(value, Tensor):
                return value.device
    return torch.device("cuda")
