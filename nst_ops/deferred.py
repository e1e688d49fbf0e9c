"""Loss rows kept on the device and handed to the Recorders in blocks (both drivers).

Recording every row at once makes the host wait for the GPU on every iteration, so the GPU idles
while Python launches the next one (measured on an H200: ~6-7 ms per iteration at any size).
Neither driver needs the loss on the host to take its next step, so the rows are collected on
the device and given to the Recorders every `every` evaluations (one transfer). What a Recorder
would need at its stop row — the image of the first row reaching target_loss, the best finite
image before a divergence — is tracked on the device without a sync. Loss tables and returned
images are the same as with recording every row; a stopped image only computes up to every−1
rows more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from nst_ops.compiling import Compiler
from nst_ops.recorder import Recorder
from nst_ops.state import select_images

SYNC_EVERY_CUDA = 16  # rows per transfer on a GPU


def rows_per_flush(device: torch.device) -> int:
    """SYNC_EVERY_CUDA on a GPU; 1 on the CPU, where waiting costs nothing and a stopped image's
    extra rows would cost real time."""
    return SYNC_EVERY_CUDA if device.type == "cuda" else 1


class _Clock:
    """Timestamps (time.perf_counter seconds) of evaluations: CUDA events on a GPU, read at
    the next flush; the CPU clock otherwise."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.stream = torch.cuda.current_stream(device)  # the image's device, not cuda:0
            torch.cuda.synchronize(device)  # once per segment: the reference event is "now"
            self.ref = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            self.ref.record(self.stream)
        self.ref_s = time.perf_counter()

    def mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record(self.stream)
        return event

    def seconds(self, marks: list[Any]) -> list[float]:
        """After a synchronisation: the perf_counter time of each mark."""
        if not self.cuda:
            return list(marks)
        return [self.ref_s + self.ref.elapsed_time(m) / 1000.0 for m in marks]


def _per_image(flags: Tensor, like: Tensor) -> Tensor:
    return flags.view((-1,) + (1,) * (like.dim() - 1))


class Tracked(NamedTuple):
    """Per image of a batch: whether every row so far is finite (alive), the best finite total
    (float64) and its image, whether a total reached the target (hit) and the first image that
    did (hit_image None: no image of the batch has a target)."""

    alive: Tensor
    best_total: Tensor
    best_image: Tensor
    hit: Tensor
    hit_image: Tensor | None


def track(row: Tensor, x: Tensor, targets: Tensor, before: Tracked) -> Tracked:
    """`before` updated with one row (B, T + L) float64 of the images x (B, ...) and the
    targets (B,) (−inf: none)."""
    total = row[:, 0]
    alive = before.alive & torch.isfinite(row).all(1)  # no non-finite row so far
    better = alive & (total < before.best_total)
    best_total = torch.where(better, total, before.best_total)
    best_image = torch.where(_per_image(better, x), x, before.best_image)
    hit, hit_image = before.hit, before.hit_image
    if hit_image is not None:
        first = alive & ~hit & (total <= targets)
        hit_image = torch.where(_per_image(first, x), x, hit_image)
        hit = hit | first
    return Tracked(alive, best_total, best_image, hit, hit_image)


class DeferredRows:
    """Rows of a batch x (B, ...) on the device; `flush` records them in order. The one owner
    of stop images: the Recorders decide at which row an image stops (target reached, or a
    non-finite row), and this keeps, on the device, the images such a decision can need."""

    def __init__(
        self, x: Tensor, recs: Sequence[Recorder], every: int, compiler: Compiler | None = None
    ) -> None:
        """`compiler` runs `track` (eagerly by default)."""
        self.every, self.clock = every, _Clock(x.device)
        self.tracker = (compiler or Compiler()).step(track)
        targets = [
            r.params.target_loss
            if r.target_active and r.params.target_loss is not None
            else -math.inf
            for r in recs
        ]
        self.targets = torch.tensor(targets, dtype=torch.float64, device=x.device)
        alive = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        self.tracked = Tracked(
            alive,
            torch.full((x.shape[0],), math.inf, dtype=torch.float64, device=x.device),
            x.detach().clone(),  # the segment's input until a finite row exists
            torch.zeros_like(alive),
            x.detach().clone() if any(math.isfinite(t) for t in targets) else None,
        )
        self.pending: list[Tensor] = []
        self.marks: list[Any] = []
        self.compiled = recs[0].compiled if recs else None  # one process clock for the batch
        self.compiled_s: list[float | None] = []  # at each push: what a compile adds comes first
        # the batch's images are in lockstep: one row count and one snapshot setting for all
        self.row = len(recs[0].rows) if recs else 0  # the next pushed row's index
        self.snapshot_every = recs[0].snapshot_every if recs else 0
        self.snapshots: list[Tensor | None] = []  # per pending row: best images, or None

    def push(self, rows: Tensor, x: Tensor) -> None:
        """Add the loss rows (B, T + L) of the images x (no host sync)."""
        row = rows.detach().to(torch.float64, copy=True)
        self.tracked = self.tracker(row, x, self.targets, self.tracked)
        self.pending.append(row)
        self.marks.append(self.clock.mark())
        self.compiled_s.append(None if self.compiled is None else self.compiled())
        every, self.row = self.snapshot_every, self.row + 1
        due = every > 0 and (self.row - 1) > 0 and (self.row - 1) % every == 0
        self.snapshots.append(self.tracked.best_image.clone() if due else None)

    def due(self) -> bool:
        return len(self.pending) >= self.every

    def flush(self, recs: Sequence[Recorder]) -> list[bool]:
        """Record the pending rows (one transfer); per image, whether it must stop."""
        rows = torch.stack(self.pending).cpu()  # (P, B, T + L)
        seconds, compiled, snapshots = (
            self.clock.seconds(self.marks),
            self.compiled_s,
            self.snapshots,
        )
        self.pending, self.marks, self.compiled_s, self.snapshots = [], [], [], []
        stops = []
        for b, rec in enumerate(recs):
            stop = False
            for p, at in enumerate(seconds):
                snapshot = snapshots[p]
                if snapshot is not None:
                    rec.snapshots[len(rec.rows)] = snapshot[b].cpu()
                if rec.record(rows[p, b], at, compiled[p]):
                    stop = True
                    break
            stops.append(stop)
        return stops

    def stop_images(self, stops: list[bool], recs: Sequence[Recorder]) -> dict[int, Tensor]:
        """Image b (as pushed, without the batch dim) for each b that stops: the first image
        reaching the target, or after a divergence the best finite one of this segment."""
        images = {}
        for b, (stop, rec) in enumerate(zip(stops, recs, strict=True)):
            if stop and rec.diverged_at is None and self.tracked.hit_image is not None:
                images[b] = self.tracked.hit_image[b]
            elif stop:
                images[b] = self.tracked.best_image[b]
        return images

    def keep(self, keep: Tensor) -> None:
        """Forget every image but `keep` (long indices into the batch; after `stop_images`)."""
        self.targets = self.targets.index_select(0, keep)
        self.tracked = select_images(self.tracked, keep)  # None (no hit image) stays None
