"""`nst run` / `python -m workflows.run`: stylize every row of a Parquet manifest on Ray.

Thin: flags → RunConfig → workflows.batch.job.run_job. The manifest is streamed, in-flight work
is bounded, results are written per pair by the workers and consolidated at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from manifests.manifest import ManifestError
from nst_ops.vgg import min_side
from workflows.batch.config import RunConfig, run_default
from workflows.batch.job import run_job
from workflows.batch.manifest import Shard
from workflows.errors import EXIT_FAILED_ROWS, EXIT_FATAL, EXIT_OK, ClusterError, guarded
from workflows.params_cli import DefaultsHelp, add_model_flags, at_least
from workflows.storage import parse_storage_options


def _yardstick_size(text: str) -> int:
    """0 (off) or a long side that can reach the yardstick's deepest layer, relu5_1 (a pair
    whose short side is narrower is refused on its own: workflows.pair)."""
    value, least = int(text), min_side("vgg16", "relu5_1")  # the same in vgg19
    if value != 0 and value < least:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no yardstick) or at least {least}, got {value}"
        )
    return value


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# The run flags: (flag, RunConfig field, type, help); each default is the field's.
_FLAGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("--address", "address", str, "Ray cluster: HOST:PORT, auto (the one `ray start` began on "
     "this machine) or ray://HOST:PORT (default: RAY_ADDRESS, else a new local Ray)"),
    ("--gpus-per-task", "gpus_per_task", at_least(float, 0), "GPUs per pair (0: CPU)"),
    ("--cpus-per-task", "cpus_per_task", at_least(int, 1), "CPUs per worker"),
    ("--num-workers", "num_workers", at_least(int, 1),
     "worker actors (default: what fits the cluster now)"),
    ("--max-in-flight", "max_in_flight", at_least(int, 1),
     "bound on queued pairs (default: 2 per worker)"),
    ("--max-retries", "max_retries", at_least(int, 0), "retries of a pair whose worker died"),
    ("--pairs-per-gpu", "pairs_per_gpu", at_least(int, 1),
     "pairs optimised together in one batch per worker (compatible rows only)"),
    ("--limit", "limit", at_least(int, 1), "only the first N manifest rows"),
    ("--shard", "shard", _shard, "K/N: run only rows K, K+N, K+2N, ... (one of N drivers "
     "into one --output; no consolidation: a last run without --shard does it)"),
    ("--yardstick-size", "yardstick_size", _yardstick_size,
     "long side of the fixed yardstick evaluation, px (0: off; else at least 16)"),
    ("--yardstick-every", "yardstick_every", at_least(int, 0),
     "also evaluate the yardstick at loss rows N, 2N, ... (the best image so far; into the "
     "loss table; 0: only the output)"),
    ("--storage-retry-seconds", "storage_retry_s", at_least(float, 0),
     "how long reads/writes retry an unreachable store before the row fails"),
    ("--connect-timeout-seconds", "connect_timeout_s", at_least(float, 0, above=True),
     "how long to wait for the Ray cluster at --address / RAY_ADDRESS before exit 1"),
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, its default taken from there."""
    p.add_argument("--manifest", required=True, help="Parquet manifest (path or fsspec URI)")
    p.add_argument("--output", required=True, help="output folder or prefix (path or URI)")
    for flag, field, kind, text in _FLAGS:
        metavar = "SECONDS" if field.endswith("_s") else None
        p.add_argument(flag, dest=field, metavar=metavar, type=kind, default=run_default(field),
                       help=text)  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_flags(p)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """RunConfig from the parsed flags (each field has a flag of the same name)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)}
    given["output"] = args.output.rstrip("/")
    given["storage_options"] = parse_storage_options(args.storage_options)
    return RunConfig(**given)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        counts = run_job(cfg)
    except ManifestError as e:
        print(f"error: manifest: {e}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (job.Interrupted)
        print(f"\ninterrupted: finished pairs are kept in {cfg.output}; run the same command "
              "again to resume", file=sys.stderr)  # fmt: skip
        return 128 + getattr(e, "signum", signal.SIGINT)
    except ClusterError as e:
        if threading.current_thread() is not threading.main_thread():
            print(f"error: {e}", file=sys.stderr)
            return EXIT_FATAL  # called as a library (a test's thread): never end its process
        # Ray's connect attempt cannot be cancelled: its thread would go on logging retries and
        # delay the exit. Nothing has been written yet, so end the process here.
        _last_line(f"error: {e}")
        os._exit(EXIT_FATAL)
    print(counts.summary(cfg.output, cfg.shard), file=sys.stderr)
    return EXIT_FAILED_ROWS if counts.failed else EXIT_OK


def _last_line(message: str) -> None:
    """Write `message` as stderr's last line: Ray's connect thread (C++) logs its retries
    straight to fd 2 until the process ends, so fd 2 goes to /dev/null first and the message
    to a copy of it."""
    sys.stdout.flush()
    sys.stderr.flush()
    copy = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    os.write(copy, f"{message}\n".encode())


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "run", help="stylize every row of a manifest on Ray", description=__doc__
    )
    add_arguments(p)
    p.set_defaults(func=main)


def module_main(argv: Sequence[str] | None = None) -> int:
    """`python -m workflows.run ...` (as `ray job submit` runs it): the same as `nst run`."""
    parser = argparse.ArgumentParser(
        prog="python -m workflows.run", description=__doc__, formatter_class=DefaultsHelp
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return guarded(main, args)


if __name__ == "__main__":
    sys.exit(module_main())
