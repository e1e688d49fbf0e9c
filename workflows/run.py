"""`nst run` / `python -m workflows.run`: stylize every row of a Parquet manifest on Ray.

The manifest is streamed, in-flight work is bounded, results are written per pair by the workers
(so the driver holds no list of results) and consolidated at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from manifests.manifest import ManifestError, ManifestRow, check_schema, iter_rows
from workflows.errors import ClusterError, InputError
from workflows.images import DEFAULT_MAX_PIXELS
from workflows.outputs import consolidate, done_ids, now
from workflows.params_cli import DEFAULT_MODEL, DEFAULT_WEIGHTS, add_model_flags
from workflows.scheduler import RunCounts, connect, schedule
from workflows.storage import (
    StorageOptions,
    configure,
    filesystem,
    join,
    parse_storage_options,
    read_bytes,
    write_bytes,
)
from workflows.weights import resolve_weights

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_FAILED_ROWS = 0, 1, 2, 3


@dataclass(frozen=True)
class RunConfig:
    """Run-level settings of `nst run` (per-pair settings live in the manifest)."""

    manifest: str
    output: str
    address: str | None = None
    model: str = DEFAULT_MODEL
    weights: str = DEFAULT_WEIGHTS
    gpus_per_task: float = 1.0
    cpus_per_task: int = 1
    num_workers: int | None = None
    max_in_flight: int | None = None
    max_retries: int = 2
    pairs_per_gpu: int = 1
    storage_options: StorageOptions | None = None
    limit: int | None = None
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    yardstick_size: int = 256
    storage_retry_s: float = 60.0
    connect_timeout_s: float = 30.0
    precision: str = "fp32"
    quiet: bool = False


class Manifest:
    """A manifest on any fsspec URI: schema checked on open, rows streamed on each iteration."""

    def __init__(self, uri: str, options: StorageOptions | None, limit: int | None) -> None:
        self.uri, self.limit = uri, limit
        self.local = _local_copy(uri, options)  # a store outage cannot break the stream later
        try:
            meta = pq.ParquetFile(self.local)
            self.num_rows = meta.metadata.num_rows
            schema = meta.schema_arrow
        except (OSError, ValueError) as e:
            raise ManifestError(f"{uri}: not a readable Parquet file ({e})") from None
        if limit is not None:
            self.num_rows = min(self.num_rows, limit)
        self.tag_fields = check_schema(schema)
        if self.num_rows == 0:
            raise ManifestError(f"{uri}: the manifest has no rows")

    def rows(self) -> Iterator[ManifestRow]:
        for row in iter_rows(pq.ParquetFile(self.local).iter_batches(batch_size=1024)):
            if self.limit is not None and row.row > self.limit:
                return
            yield row


def _local_copy(uri: str, options: StorageOptions | None) -> str:
    """A local path of the manifest (remote ones are downloaded once, with retries)."""
    fs, path = filesystem(uri, options)
    if isinstance(fs, LocalFileSystem):
        if not fs.exists(path):
            raise ManifestError(f"{uri}: no such file")
        return str(path)
    try:
        data = read_bytes(uri, options)
    except InputError as e:
        raise ManifestError(str(e)) from None
    handle, local = tempfile.mkstemp(prefix="nst-manifest-", suffix=".parquet")
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    return local


def run_job(cfg: RunConfig) -> RunCounts:
    """Run a whole manifest; raises ManifestError / InputError for fatal problems."""
    options = dict(cfg.storage_options or {})
    if os.environ.get("AWS_ENDPOINT_URL"):  # forwarded to the workers with the options
        options.setdefault("endpoint_url", os.environ["AWS_ENDPOINT_URL"])
    cfg = dataclasses.replace(cfg, storage_options=options)
    configure(cfg.storage_retry_s)
    manifest = Manifest(cfg.manifest, options, cfg.limit)
    connect(cfg.address, cfg.connect_timeout_s)  # before anything is written to --output
    started = now()
    meta = _metadata(cfg, started, manifest.num_rows)
    _write_run_json(cfg.output, meta | {"status": "running"}, options)
    weights = resolve_weights(cfg.model, cfg.weights, options)
    meta["weights_identity"] = weights.identity
    skip = done_ids(cfg.output, options)
    counts = schedule(cfg, manifest.rows(), skip, weights, manifest.tag_fields, manifest.num_rows)
    consolidate(cfg.output, manifest.rows(), manifest.tag_fields, options)
    meta |= {"status": "finished", "finished_at": now().isoformat(), "counts": counts.as_dict()}
    _write_run_json(cfg.output, meta, options)
    return counts


def _metadata(cfg: RunConfig, started: Any, num_rows: int) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("nst-batch")
    except PackageNotFoundError:
        package_version = "unknown"
    return {
        "manifest": cfg.manifest,
        "output": cfg.output,
        "rows": num_rows,
        "model": cfg.model,
        "precision": cfg.precision,
        "weights": cfg.weights if "://" not in cfg.weights else cfg.weights.split("?")[0],
        "package_version": package_version,
        "started_at": started.isoformat(),
    }


def _write_run_json(output: str, meta: dict[str, Any], options: StorageOptions) -> None:
    try:
        write_bytes(join(output, "run.json"), json.dumps(meta, indent=2).encode(), options)
    except OSError as e:
        raise InputError(f"{output}: output not writable ({e})") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="Parquet manifest (path or fsspec URI)")
    p.add_argument("--output", required=True, help="output folder or prefix (path or URI)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster: HOST:PORT, auto (the one `ray start` began on this machine) or "
        "ray://HOST:PORT (default: RAY_ADDRESS, else a new local Ray)",
    )
    p.add_argument("--gpus-per-task", type=float, default=1.0, help="GPUs per pair (0: CPU)")
    p.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per worker")
    p.add_argument("--num-workers", type=int, default=None, help="worker actors (default: fit)")
    p.add_argument("--max-in-flight", type=int, default=None, help="bound on queued pairs")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a pair whose worker died")
    p.add_argument(
        "--pairs-per-gpu",
        type=_positive,
        default=1,
        help="pairs optimised together in one batch per worker (compatible rows only)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N manifest rows")
    p.add_argument(
        "--yardstick-size",
        type=int,
        default=256,
        help="long side of the fixed yardstick evaluation, px (0: off)",
    )
    p.add_argument(
        "--storage-retry-seconds",
        dest="storage_retry_s",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long reads/writes retry an unreachable store before the row fails",
    )
    p.add_argument(
        "--connect-timeout-seconds",
        dest="connect_timeout_s",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="how long to wait for the Ray cluster at --address / RAY_ADDRESS before exit 1",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_flags(p)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        # Ray's connect attempt cannot be cancelled: its thread would go on logging retries and
        # delay the exit. Nothing has been written yet, so end the process here.
        os._exit(EXIT_FATAL)
    print(counts.summary(cfg.output), file=sys.stderr)
    return EXIT_FAILED_ROWS if counts.failed else EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "run", help="stylize every row of a manifest on Ray", description=__doc__
    )
    add_arguments(p)
    p.set_defaults(func=main)


if __name__ == "__main__":
    from workflows.cli import main as cli_main

    sys.exit(cli_main(["run", *sys.argv[1:]]))
