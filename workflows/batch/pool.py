"""The driver's worker actors on the connected Ray: started on first use, work only to those
that have started, a dead one replaced (and its node's others held back until they answer),
calls in flight with their rows and attempt."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from manifests.manifest import ManifestRow
from manifests.results import PairResult
from workflows.batch.config import RunConfig, WorkerConfig
from workflows.batch.worker import PairWorker
from workflows.weights import ResolvedWeights

# Seconds a worker may take to start before a warning says the cluster has no room for it.
PENDING_WARN_S = 60.0
# Times in a row a worker that dies starting (not of its own __init__) is replaced before its
# calls are let fail as attempts.
START_DEATHS_REPLACED = 3


@dataclass(frozen=True)
class Call:
    """A call in flight: its rows, which attempt, and the slot and generation of its worker."""

    rows: list[ManifestRow]
    attempt: int
    slot: int
    generation: int


@dataclass(frozen=True)
class Finished:
    """A call's end: its rows and attempt, and its PairResults, or the exception it raised
    (RayTaskError: the pair's code raised; another RayError: the worker died)."""

    rows: list[ManifestRow]
    attempt: int
    outcome: list[PairResult] | RayError


class WorkerPool:
    """Worker actors, one per slot; a dead actor is replaced by a new one (the driver does this
    rather than Ray's restarts, so that every failed call is a real attempt). Work goes only to
    workers that have started: one that dies starting is replaced (see _start_again); one the
    cluster has no room for (more `--num-workers` than it holds now) gets none until it
    starts, so no pair waits on it; a warning says so. When a worker dies, the others on its
    node get no new work until they answer a ping: a lost node takes all its workers, and a
    retry sent to one of them would die again."""

    def __init__(
        self, cfg: RunConfig, weights: ResolvedWeights, wcfg: WorkerConfig, plan: tuple[float, int]
    ) -> None:
        gpus, self.size = plan
        self.cfg, self.weights, self.wcfg = cfg, weights, wcfg
        self.shape = (gpus, cfg.cpus_per_task)
        # Workers start with the first call: a run with nothing left to do (resumed, or the
        # last run over shards) asks the cluster for none.
        self.actors: list[Any] = []
        self.in_flight: dict[Any, Call] = {}  # the call's ObjectRef → its Call
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
        self.start_deaths = [0] * n  # its workers' deaths starting, in a row
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
        self.in_flight[call] = Call(rows, attempt, i, self.generation[i])

    def next_done(self) -> Finished | None:
        """Wait for one call to finish; None when instead a worker started or the wait timed
        out. Replaces dead actors."""
        refs = list(self.in_flight) + list(self.pings)
        ready, _ = ray.wait(refs, num_returns=1, timeout=PENDING_WARN_S)
        self._warn_pending()
        if not ready:
            return None
        ref = ready[0]
        if ref in self.pings:  # a worker is up, or it died (starting, or on a lost node)
            self._answered(ref, *self.pings.pop(ref))
            return None
        call = self.in_flight.pop(ref)
        self.load[call.slot] -= 1
        try:
            return Finished(call.rows, call.attempt, ray.get(ref))
        except RayTaskError as e:  # the call raised; its worker lives on
            return Finished(call.rows, call.attempt, e)
        except RayError as e:  # the worker died (or Ray lost the call): a new one, retried
            if call.generation == self.generation[call.slot]:  # first news of this death
                self._suspect_node_of(call.slot)
                self._replace(call.slot)
            return Finished(call.rows, call.attempt, e)

    def _answered(self, ref: Any, i: int, generation: int) -> None:
        """A ping of slot i's worker of that generation came back: started, or dead."""
        if generation != self.generation[i]:
            return  # an actor since replaced
        try:
            self.node_of[i] = ray.get(ref)["node_id"]
            self.start_deaths[i] = 0
        except RayError as e:
            if self.node_of[i] is not None:  # a suspect (it had started): its node is lost
                self._replace(i)
                return
            if self._start_again(i, e):
                return
            # it cannot start: its calls say so, and count as attempts (its pairs fail after
            # --max-retries rather than waiting for ever)
        self.started[i] = True

    def _start_again(self, i: int, error: RayError) -> bool:
        """Slot i's worker died starting: a new one in its place, costing no pair an attempt,
        unless its own __init__ raised (a new one would too) or the slot's workers have died
        starting START_DEATHS_REPLACED times in a row already. (Ray may place a replacement on
        a node it has not yet found lost; that worker dies starting, through no fault of any
        pair.)"""
        if getattr(error, "actor_init_failed", False):
            return False
        if self.start_deaths[i] >= START_DEATHS_REPLACED:
            return False
        self.start_deaths[i] += 1
        self._replace(i)
        return True

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
