"""Loss rows: the Recorder collects one row per objective evaluation (LossTerms.stacked, laid out
as LOSS_TERMS then E_l) and tells the drivers when to stop; `log` turns them into the columns of
the loss table (LossLog). Progress reports go to an optional callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nst_ops.objective import TERM_NAMES
from nst_ops.params import StyleParams


@dataclass
class LossLog:
    """Columns of the loss table, one entry per row: `terms[name]` for each name of LOSS_TERMS
    (unweighted terms; "total" weighted), E_l per style layer, the row's stage, scale and time:
    `elapsed_s` seconds since the pair's loop started without the time spent compiling, which
    `compile_s` holds (compiling so far in this pair's run; their sum is the wall clock)."""

    iteration: list[int] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n in TERM_NAMES})
    stage: list[int] = field(default_factory=list)
    scale: list[int] = field(default_factory=list)
    style_layer_losses: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)
    compile_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.iteration)

    @property
    def total_loss(self) -> list[float]:
        return self.terms["total"]


@dataclass(frozen=True)
class Progress:
    """Reported to the callback: iteration i of `iterations`, the loss of row i, seconds since
    the loop started (compiling excluded, as the loss table's elapsed_s)."""

    iteration: int
    iterations: int
    total_loss: float
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


def _never_compiled() -> float:
    return 0.0


class Recorder:
    """Collects one loss row per evaluation; tells the drivers when to stop. `compiled`: the
    seconds the process has spent compiling so far (nst_ops.evaluation's Evaluator.compile_s),
    kept out of the rows' elapsed_s: a pair that compiles its graphs and one that reuses them
    are timed alike. `snapshot_every` N > 0: `snapshots` holds, for rows N, 2N, …, the image
    of the lowest total of the row's segment so far (the image a run stopped there returns)."""

    def __init__(
        self,
        params: StyleParams,
        callback: ProgressCallback | None,
        iterations: int,
        compiled: Callable[[], float] = _never_compiled,
        snapshot_every: int = 0,
    ) -> None:
        self.params = params
        # every snapshot_every-th row (0: none): the segment's lowest-total image so far, by
        # row, kept by nst_ops.deferred (for the yardstick at checkpoints)
        self.snapshot_every = snapshot_every
        self.snapshots: dict[int, Tensor] = {}
        self.callback = callback
        self.iterations = iterations  # over all stages, for progress reports
        self.stage = 1
        self.stages: list[int] = []
        self.scale = params.image_size
        self.scales: list[int] = []
        self.target_active = True  # target_loss applies to the final segment's objective only
        self.rows: list[Tensor] = []
        self.times: list[float] = []
        self.compile_times: list[float] = []
        self.compiled = compiled
        self.compiled_at_start = compiled()
        self.start = time.perf_counter()
        self.reached = False
        self.diverged_at: int | None = None

    def begin(self, stage: int, scale: int, target_active: bool) -> None:
        """A new segment (Luan's stage, working scale): its rows are labelled so, and
        target_loss applies only when `target_active` (the final segment)."""
        self.stage, self.scale, self.target_active = stage, scale, target_active

    def record(self, row: Tensor, at: float | None = None, compiled_s: float | None = None) -> bool:
        """Log `row` (T + L,) on the CPU (LossTerms.stacked of an evaluated image, at
        perf_counter time `at`, default now, when the process had compiled for `compiled_s`
        seconds, default `compiled()` now). The stop decision: True when the caller must stop,
        target_loss reached or a non-finite loss (a divergence); the caller keeps the images
        (nst_ops.deferred)."""
        self.rows.append(row)
        self.stages.append(self.stage)
        self.scales.append(self.scale)
        compiling = (self.compiled() if compiled_s is None else compiled_s) - self.compiled_at_start
        self.compile_times.append(compiling)
        self.times.append((time.perf_counter() if at is None else at) - self.start - compiling)
        i, target, total = len(self.rows) - 1, self.params.target_loss, float(row[0])
        if self.callback is not None:
            self.callback(Progress(i, self.iterations, total, self.times[-1]))
        if not bool(torch.isfinite(row).all()):
            self.diverged_at = i
            return True
        self.reached = self.target_active and target is not None and total <= target
        return self.reached

    @property
    def stopped(self) -> bool:
        return self.reached or self.diverged_at is not None

    @property
    def evaluations(self) -> int:
        return len(self.rows)

    def log(self, style_layers: Sequence[str]) -> LossLog:
        """The recorded rows as loss-table columns (one host transfer)."""
        log = LossLog()
        rows = torch.stack(self.rows).double().cpu().tolist()
        t = len(TERM_NAMES)
        for i, row in enumerate(rows):
            log.iteration.append(i)
            for name, value in zip(TERM_NAMES, row[:t], strict=True):
                log.terms[name].append(value)
            log.style_layer_losses.append(dict(zip(style_layers, row[t:], strict=True)))
        log.stage, log.scale, log.elapsed_s = list(self.stages), list(self.scales), list(self.times)
        log.compile_s = list(self.compile_times)
        return log


def record_all(recs: Sequence[Recorder], rows: Tensor) -> list[bool]:
    """Record row b of `rows` (B, T + L) in recs[b], with one host transfer for the whole
    batch. Returns the stop flags."""
    host = rows.detach().double().cpu()
    return [rec.record(host[b]) for b, rec in enumerate(recs)]
