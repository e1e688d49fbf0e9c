"""Driver side of `nst run`: stream the rows, batch them, keep a bounded number of calls in
flight on the worker pool (workflows.batch.pool), retry pairs whose worker died, count
outcomes."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
from ray.exceptions import RayError, RayTaskError
from tqdm import tqdm

from manifests.manifest import ManifestRow
from manifests.results import PairResult, Status
from nst_ops.params import batch_key
from workflows.batch.cluster import connect, plan_workers
from workflows.batch.config import RunConfig, WorkerConfig
from workflows.batch.manifest import Shard
from workflows.batch.outputs import now, write_result
from workflows.batch.pool import WorkerPool
from workflows.errors import StorageError
from workflows.weights import ResolvedWeights


@dataclass
class RunCounts:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    redone: int = 0  # done pairs run again: their manifest row changed under the same pair_id

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self, output: str, shard: Shard | None = None) -> str:
        counted = (
            f"{self.ok} ok, {self.failed} failed, {self.skipped} skipped (already ok), "
            f"{self.retried} retried"
        )
        if shard is None:
            return f"{counted}; results in {output}/results.parquet"
        return (
            f"shard {shard}: {counted}; when every shard has finished, the same command "
            f"without --shard consolidates {output}/results.parquet (and runs what failed)"
        )


class _Batcher:
    """Groups valid rows by nst_ops' batch_key into batches of up to `size` rows. At most
    `limit` rows wait (then the largest group leaves, partial), so memory stays bounded."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, max(size, limit)
        self.groups: dict[Any, list[ManifestRow]] = {}
        self.waiting = 0

    def add(self, row: ManifestRow) -> list[list[ManifestRow]]:
        """Batches ready to submit after adding `row`."""
        assert row.params is not None
        key = batch_key(row.params)
        group = self.groups.setdefault(key, [])
        group.append(row)
        self.waiting += 1
        if len(group) >= self.size:
            return [self._take(key)]
        if self.waiting > self.limit:
            return [self._take(max(self.groups, key=lambda k: len(self.groups[k])))]
        return []

    def flush(self) -> list[list[ManifestRow]]:
        return [self._take(key) for key in list(self.groups)]

    def _take(self, key: Any) -> list[ManifestRow]:
        rows = self.groups.pop(key)
        self.waiting -= len(rows)
        return rows


def schedule(
    cfg: RunConfig,
    rows: Iterable[ManifestRow],
    skip: Mapping[str, str],
    weights: ResolvedWeights,
    tag_fields: list[pa.Field],
    total: int | None = None,
    plan: tuple[float, int] | None = None,
    counts: RunCounts | None = None,
) -> RunCounts:
    """Run every row not in `skip` (done pair id → its inputs fingerprint) on the workers of
    `plan` (plan_workers' (GPUs per worker, workers); planned here when not given), counting
    into `counts` as pairs finish (a new RunCounts when not given)."""
    fixed = connect(cfg.address, cfg.connect_timeout_s)
    wcfg = cfg.worker(tag_fields)
    pool = WorkerPool(cfg, weights, wcfg, plan or plan_workers(cfg, fixed))
    counts = RunCounts() if counts is None else counts
    batcher = _Batcher(cfg.pairs_per_gpu, 4 * cfg.pairs_per_gpu * pool.size)
    bar = tqdm(total=total, disable=cfg.quiet, unit="pair", file=sys.stderr)
    run = _Run(cfg, wcfg, pool, counts, bar)
    try:
        for row in rows:
            if _settled(row, skip, wcfg, counts):
                bar.update(1)
                continue
            for batch in batcher.add(row):
                run.submit(batch)
        for batch in batcher.flush():
            run.submit(batch)
        while pool.in_flight:
            run.collect()
    finally:
        bar.close()
        pool.close()
    _say_skipped(counts, cfg.output)
    return counts


def _settled(
    row: ManifestRow, skip: Mapping[str, str], wcfg: WorkerConfig, counts: RunCounts
) -> bool:
    """Whether `row` needs no worker: done before with the same inputs (skipped), or refused
    when the manifest was read (its error recorded); counted either way. A row done before with
    other inputs is counted as redone and goes to a worker."""
    if row.own_key and row.pair_id in skip:
        if skip[row.pair_id] in ("", row.inputs):  # '': an older marker, unknown
            counts.skipped += 1
            return True
        counts.redone += 1
    if row.error is not None:
        _record_failure(wcfg, row, row.error, 0, counts)
        return True
    return False


def _say_skipped(counts: RunCounts, output: str) -> None:
    """What a resumed run skipped, and what it ran again."""
    if counts.skipped:
        print(f"skipped {counts.skipped} pairs already ok in {output}", file=sys.stderr)
    if counts.redone:
        print(f"ran {counts.redone} pairs again: done under the same pair_id with other URIs or "
              "parameters (their manifest rows changed)", file=sys.stderr)  # fmt: skip


@dataclass
class _Run:
    """What handing out and collecting calls works with: the settings, the pool, the counts
    so far and the progress bar."""

    cfg: RunConfig
    wcfg: WorkerConfig
    pool: WorkerPool
    counts: RunCounts
    bar: Any

    def submit(self, batch: list[ManifestRow]) -> None:
        """Hand out one call, once a started worker has room for it."""
        while self.pool.full():
            self.collect()
        self.pool.submit(batch, 1)

    def collect(self) -> None:
        """Handle one finished call: count its rows, retry them if the worker died (a batch's
        pairs one by one: the likeliest death of a batch is the host running out of memory,
        which the same batch would again, as a batch out of GPU memory is split in the
        worker)."""
        done = self.pool.next_done()
        if done is None:  # a worker started, or nothing finished for a while
            return
        counts, outcome = self.counts, done.outcome
        if isinstance(outcome, RayTaskError):
            cause = outcome.cause if outcome.cause is not None else outcome
            if isinstance(cause, StorageError):  # the worker could not write the pair's result
                raise _stopped(cause, counts)
            message = f"{type(cause).__name__}: {cause}".splitlines()[0]
            for row in done.rows:
                _record_failure(self.wcfg, row, message, done.attempt, counts)
        elif isinstance(outcome, RayError):  # the worker died (ActorDiedError, ...)
            if done.attempt <= self.cfg.max_retries:
                counts.retried += len(done.rows)
                for row in done.rows:
                    self.pool.submit([row], done.attempt + 1)
                return
            message = (f"worker died {done.attempt} times running this pair (last: "
                       f"{type(outcome).__name__})")  # fmt: skip
            for row in done.rows:
                _record_failure(self.wcfg, row, message, done.attempt, counts)
        else:
            counts.ok += sum(result.ok for result in outcome)
            counts.failed += sum(not result.ok for result in outcome)
        self.bar.update(len(done.rows))
        self.bar.set_postfix(ok=counts.ok, failed=counts.failed,
                             running=len(self.pool.in_flight), refresh=False)  # fmt: skip


def _record_failure(
    wcfg: WorkerConfig, row: ManifestRow, message: str, attempt: int, counts: RunCounts
) -> None:
    counts.failed += 1
    result = PairResult(Status.ERROR, message, attempt=attempt, finished_at=now())
    try:
        write_result(wcfg, row, result)
    except StorageError as e:
        raise _stopped(e, counts) from None
    except OSError as e:
        print(f"could not write the error result of row {row.row}: {e}", file=sys.stderr)


def _stopped(e: StorageError, counts: RunCounts) -> StorageError:
    """The output store stayed unreachable for the retry budget: every later row would wait
    out the budget and fail unrecorded too, so the run stops (exit 1); done pairs are kept."""
    return StorageError(
        f"{e}; stopped the run: results can no longer be written (the {counts.ok} pairs "
        "finished ok in this run are kept, as are earlier runs'; run the same command again "
        "to resume)"
    )
