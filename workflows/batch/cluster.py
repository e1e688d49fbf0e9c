"""Reaching the Ray cluster of `nst run`: an initialised Ray, the one at --address /
RAY_ADDRESS within --connect-timeout-seconds, or a new local one; ClusterError otherwise. And
how many workers of what size it holds (plan_workers)."""

from __future__ import annotations

import logging
import os
import sys
import threading

import ray

from workflows.batch.config import RunConfig
from workflows.errors import ClusterError, InputError


def connect(address: str | None, timeout_s: float = 30.0) -> bool:
    """Use an initialised Ray; else connect to --address / RAY_ADDRESS (`auto`: the cluster
    started on this machine), waiting at most `timeout_s`; else start a new local Ray, whatever
    an earlier `ray start` left in /tmp/ray. ClusterError when no cluster answers in time.
    True when it started that local Ray (whose resources are fixed: no autoscaler)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:  # "local": never the stale address of a killed `ray start`
        ray.init(address="local", log_to_driver=False)
        return True
    _init_within(address, timeout_s)
    return False


def plan_workers(cfg: RunConfig, fixed: bool = False) -> tuple[float, int]:
    """(GPUs per worker, number of workers) for the cluster as it is now. When no node can hold
    one worker: InputError for a `fixed` cluster (the local Ray nst run started), else a
    warning (an autoscaler may add such a node). With no GPU and no --num-workers, the local
    Ray runs on CPU; any other cluster is an InputError, as it may be an autoscaling one with
    no GPU node up yet, where falling back to one CPU worker would run the sweep there."""
    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    gpus = cfg.gpus_per_task
    if gpus > 0 and resources.get("GPU", 0) == 0 and cfg.num_workers is None:
        if not fixed:
            raise InputError(
                "the Ray cluster has no GPU now: --num-workers N starts N workers of "
                "--gpus-per-task GPUs (an autoscaler adds their nodes); --gpus-per-task 0 runs "
                "on CPU"
            )
        print(
            "WARNING: Ray sees no GPU on this machine; running on CPU (--gpus-per-task 0)",
            file=sys.stderr,
        )
        gpus = 0
    _check_room(gpus, cfg.cpus_per_task, fixed)
    if cfg.num_workers:
        workers = cfg.num_workers
    elif gpus > 0:
        workers = int(resources["GPU"] // gpus)
    else:
        workers = int(resources.get("CPU", 1) // max(1, cfg.cpus_per_task))
    workers = max(1, workers)
    if cfg.max_in_flight:
        workers = min(workers, cfg.max_in_flight)
    return gpus, workers


def _check_room(gpus: float, cpus: float, fixed: bool) -> None:
    """Whether any live node has `gpus` GPU and `cpus` CPU for one worker (see plan_workers)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    if any(r.get("GPU", 0) >= gpus and r.get("CPU", 0) >= cpus for r in nodes):
        return
    big: dict[str, float] = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    what = (
        f"no node of the Ray cluster has room for one worker ({gpus:g} GPU and {cpus:g} CPU: "
        f"--gpus-per-task, --cpus-per-task); the largest has {big.get('GPU', 0):g} GPU and "
        f"{big.get('CPU', 0):g} CPU"
    )
    if fixed:
        raise InputError(f"{what} (the local Ray that nst run started: lower them)")
    print(f"WARNING: {what}; waiting for the cluster's autoscaler to add one", file=sys.stderr)


def _init_within(address: str, timeout_s: float) -> None:
    """ray.init(address) on a helper thread: Ray's own client retries a dead GCS forever."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
            outcome.append(None)
        except BaseException as e:  # handed to the caller's thread
            outcome.append(e)

    logging.getLogger("ray._private.worker").addFilter(_NoSigtermWarning())
    thread = threading.Thread(target=attempt, name="nst-ray-connect", daemon=True)
    thread.start()
    thread.join(timeout_s)
    check = (
        "check that its head node is up (`ray status` there), the address and port, and "
        "RAY_AUTH_MODE=token with the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN); "
        "without --address and RAY_ADDRESS, nst run starts a local Ray"
    )
    address = _describe(address)
    if not outcome:
        raise ClusterError(
            f"Ray cluster {address}: no answer within {timeout_s:g} s "
            f"(--connect-timeout-seconds); {check}"
        )
    if outcome[0] is not None:
        reason = str(outcome[0]).strip().splitlines()
        first = reason[0] if reason else type(outcome[0]).__name__
        raise ClusterError(f"Ray cluster {address}: {first}; {check}")


class _NoSigtermWarning(logging.Filter):
    """Ray warns that ray.init off the main thread sets no SIGTERM handler: run_job installs its
    own for the run (workflows.batch.job), and before that Python's default (terminate) is
    what `ray job stop` and a scheduler's kill want."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _describe(address: str) -> str:
    """`auto` with the address it stands for (the file `ray start` leaves), for messages."""
    if address != "auto":
        return address
    try:
        from ray._common.utils import get_ray_address_file  # private: messages only

        path = get_ray_address_file(None)
        with open(path) as f:
            return f"auto ({f.read().strip()} from {path})"
    except (ImportError, OSError):
        return "auto"
