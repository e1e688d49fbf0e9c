"""Driver side of `nst run`: start the worker actors on the connected Ray, keep a bounded number
of pairs in flight, retry pairs whose worker died, count outcomes."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import ray
from ray.exceptions import RayError, RayTaskError
from tqdm import tqdm

from manifests.manifest import ManifestRow
from manifests.results import PairResult, Status
from nst_ops.params import batch_key
from workflows.batch.cluster import connect, plan_workers
from workflows.batch.config import RunConfig, WorkerConfig
from workflows.batch.manifest import Shard
from workflows.batch.outputs import now, write_result
from workflows.batch.worker import PairWorker
from workflows.errors import StorageError
from workflows.weights import ResolvedWeights

# Seconds a worker may take to start before a warning says the cluster has no room for it.
PENDING_WARN_S = 60.0


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


class _Pool:
    """Worker actors, one per slot; a dead actor is replaced by a new one (the driver does this
    rather than Ray's restarts, so that every failed call is a real attempt). Work goes only to
    workers that have started: one the cluster has no room for (more `--num-workers` than it
    holds now) gets none until it starts, so no pair waits on it; a warning says so. When a
    worker dies, the others on its node get no new work until they answer a ping: a lost node
    takes all its workers, and a retry sent to one of them would die again."""

    def __init__(
        self, cfg: RunConfig, weights: ResolvedWeights, wcfg: WorkerConfig, plan: tuple[float, int]
    ) -> None:
        gpus, self.size = plan
        self.cfg, self.weights, self.wcfg = cfg, weights, wcfg
        self.shape = (gpus, cfg.cpus_per_task)
        # Workers start with the first call: a run with nothing left to do (resumed, or the
        # last run over shards) asks the cluster for none.
        self.actors: list[Any] = []
        self.in_flight: dict[Any, tuple[list[ManifestRow], int, int, int]] = {}
        self.warned = False

    def _start(self) -> None:
        n, cfg = self.size, self.cfg
        # Ray's stubs type actor classes loosely: handles are Any here
        self.actor_class: Any = ray.remote(PairWorker).options(
            num_gpus=self.shape[0], num_cpus=cfg.cpus_per_task, max_restarts=0
        )
        # Resolved once on the driver, shared through the object store; every call carries the
        # (tiny) reference and a worker fetches the weights once.
        self.weights_ref = ray.put(self.weights)
        self.actors = [self.actor_class.remote(self.wcfg) for _ in range(n)]
        self.generation = [0] * n
        self.started, self.created = [False] * n, [time.monotonic()] * n
        self.node_of: list[str | None] = [None] * n  # the node a started worker runs on
        self.pings: dict[Any, tuple[int, int]] = {}  # info call → (slot, generation)
        for i in range(n):
            self.pings[self.actors[i].info.remote()] = (i, 0)
        per_call = cfg.pairs_per_gpu  # a call carries up to pairs-per-gpu rows
        self.depth = max(1, (cfg.max_in_flight or 2 * n * per_call) // (n * per_call))
        self.load = [0] * n

    def full(self) -> bool:
        if not self.actors:
            self._start()
        loads = [load for load, up in zip(self.load, self.started, strict=True) if up]
        return not loads or min(loads) >= self.depth

    def submit(self, rows: list[ManifestRow], attempt: int) -> None:
        """One call of rows (a batch of up to pairs-per-gpu) to the least loaded worker that
        has started (a retry, when none has: to any, its replacement starting)."""
        slots = [i for i, up in enumerate(self.started) if up] or list(range(len(self.actors)))
        i = min(slots, key=lambda j: self.load[j])
        self.load[i] += 1
        call = self.actors[i].run.remote(rows, attempt, [self.weights_ref])
        self.in_flight[call] = (rows, attempt, i, self.generation[i])

    def next_done(self) -> tuple[list[ManifestRow], int, Any] | None:
        """Wait for one call: (rows, attempt, PairResults | exception); None when instead a
        worker started or the wait timed out. Replaces dead actors."""
        refs = list(self.in_flight) + list(self.pings)
        ready, _ = ray.wait(refs, num_returns=1, timeout=PENDING_WARN_S)
        self._warn_pending()
        if not ready:
            return None
        ref = ready[0]
        if ref in self.pings:  # a worker is up, or it died (starting, or on a lost node)
            self._answered(ref, *self.pings.pop(ref))
            return None
        rows, attempt, i, generation = self.in_flight.pop(ref)
        self.load[i] -= 1
        try:
            return rows, attempt, ray.get(ref)
        except RayTaskError as e:  # the call raised; its worker lives on
            return rows, attempt, e
        except RayError as e:  # the worker died (or Ray lost the call): a new one, retried
            if generation == self.generation[i]:  # first news of this death
                self._suspect_node_of(i)
                self._replace(i)
            return rows, attempt, e

    def _answered(self, ref: Any, i: int, generation: int) -> None:
        """A ping of slot i's worker of that generation came back: started, or dead."""
        if generation != self.generation[i]:
            return  # an actor since replaced
        try:
            self.node_of[i] = ray.get(ref)["node_id"]
        except RayError:
            if self.node_of[i] is not None:  # a suspect (it had started): its node is lost
                self._replace(i)
                return
            # died starting: its calls say so, and count as attempts (a worker that cannot
            # start fails its pairs after --max-retries rather than waiting for ever)
        self.started[i] = True

    def _suspect_node_of(self, i: int) -> None:
        """Slot i's worker died: the started workers on its node get no new work until they
        answer a ping (queued behind their calls), as a whole lost node's would not."""
        node = self.node_of[i]
        for j, up in enumerate(self.started):
            if j != i and up and node is not None and self.node_of[j] == node:
                self.started[j] = False
                self.pings[self.actors[j].info.remote()] = (j, self.generation[j])

    def _replace(self, i: int) -> None:
        """A new worker in slot i (the old one died or is presumed dead)."""
        self.generation[i] += 1
        ray.kill(self.actors[i])  # should it live on, it would keep its GPU
        self.actors[i], self.started[i] = self.actor_class.remote(self.wcfg), False
        self.node_of[i] = None
        self.created[i] = time.monotonic()
        self.pings[self.actors[i].info.remote()] = (i, self.generation[i])

    def _warn_pending(self) -> None:
        late = time.monotonic() - PENDING_WARN_S  # created before this and still not started
        slots = zip(self.started, self.created, strict=True)
        waiting = sum(not up and created <= late for up, created in slots)
        if self.warned or not waiting:
            return
        self.warned = True
        gpus, cpus = self.shape
        free = ray.available_resources()  # type: ignore[no-untyped-call]
        room = ", ".join(f"{free.get(k, 0):g} {k}" for k in ("GPU", "CPU"))
        print(f"WARNING: {waiting} of {len(self.actors)} workers ({gpus:g} GPU, {cpus:g} CPU "
              f"each) have not started after {PENDING_WARN_S:g} s: the cluster has no room for "
              f"them (free now: {room}); pairs go to the workers that started. An autoscaling "
              "cluster adds nodes; on a fixed one, lower --num-workers",
              file=sys.stderr)  # fmt: skip

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)


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
    pool = _Pool(cfg, weights, wcfg, plan or plan_workers(cfg, fixed))
    counts = RunCounts() if counts is None else counts
    batcher = _Batcher(cfg.pairs_per_gpu, 4 * cfg.pairs_per_gpu * pool.size)
    bar = tqdm(total=total, disable=cfg.quiet, unit="pair", file=sys.stderr)
    try:
        for row in rows:
            if row.own_key and row.pair_id in skip:
                if skip[row.pair_id] in ("", row.inputs):  # '': an older marker, unknown
                    counts.skipped += 1
                    bar.update(1)
                    continue
                counts.redone += 1
            if row.error is not None:
                _record_failure(wcfg, row, row.error, 0, counts)
                bar.update(1)
                continue
            for batch in batcher.add(row):
                _submit(pool, cfg, wcfg, counts, bar, batch)
        for batch in batcher.flush():
            _submit(pool, cfg, wcfg, counts, bar, batch)
        while pool.in_flight:
            _collect(pool, cfg, wcfg, counts, bar)
    finally:
        bar.close()
        pool.close()
    _say_skipped(counts, cfg.output)
    return counts


def _say_skipped(counts: RunCounts, output: str) -> None:
    """What a resumed run skipped, and what it ran again."""
    if counts.skipped:
        print(f"skipped {counts.skipped} pairs already ok in {output}", file=sys.stderr)
    if counts.redone:
        print(f"ran {counts.redone} pairs again: done under the same pair_id with other URIs or "
              "parameters (their manifest rows changed)", file=sys.stderr)  # fmt: skip


def _submit(
    pool: _Pool,
    cfg: RunConfig,
    wcfg: WorkerConfig,
    counts: RunCounts,
    bar: Any,
    batch: list[ManifestRow],
) -> None:
    while pool.full():
        _collect(pool, cfg, wcfg, counts, bar)
    pool.submit(batch, 1)


def _collect(pool: _Pool, cfg: RunConfig, wcfg: WorkerConfig, counts: RunCounts, bar: Any) -> None:
    """Handle one finished call: count its rows, retry them if the worker died (a batch's
    pairs one by one: the likeliest death of a batch is the host running out of memory, which
    the same batch would again, as a batch out of GPU memory is split in the worker)."""
    done = pool.next_done()
    if done is None:  # a worker started, or nothing finished for a while
        return
    rows, attempt, outcome = done
    if isinstance(outcome, RayTaskError):
        cause = outcome.cause if outcome.cause is not None else outcome
        if isinstance(cause, StorageError):  # the worker could not write the pair's result
            raise _stopped(cause, counts)
        message = f"{type(cause).__name__}: {cause}".splitlines()[0]
        for row in rows:
            _record_failure(wcfg, row, message, attempt, counts)
    elif isinstance(outcome, RayError):  # the worker died (ActorDiedError, ...)
        if attempt <= cfg.max_retries:
            counts.retried += len(rows)
            for row in rows:
                pool.submit([row], attempt + 1)
            return
        message = f"worker died {attempt} times running this pair (last: {type(outcome).__name__})"
        for row in rows:
            _record_failure(wcfg, row, message, attempt, counts)
    else:
        for result in outcome:
            if result.ok:
                counts.ok += 1
            else:
                counts.failed += 1
    bar.update(len(rows))
    bar.set_postfix(ok=counts.ok, failed=counts.failed, running=len(pool.in_flight), refresh=False)


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
