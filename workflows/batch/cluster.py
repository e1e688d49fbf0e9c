"""Reaching the Ray cluster of `nst run`: an initialised Ray, the one at --address /
RAY_ADDRESS within --connect-timeout-seconds, or a new local one; ClusterError otherwise."""

from __future__ import annotations

import logging
import os
import threading

import ray

from workflows.errors import ClusterError


def connect(address: str | None, timeout_s: float = 30.0) -> None:
    """Use an initialised Ray; else connect to --address / RAY_ADDRESS (`auto`: the cluster
    started on this machine), waiting at most `timeout_s`; else start a new local Ray, whatever
    an earlier `ray start` left in /tmp/ray. ClusterError when no cluster answers in time."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:  # "local": never the stale address of a killed `ray start`
        ray.init(address="local", log_to_driver=False)
        return
    _init_within(address, timeout_s)


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
