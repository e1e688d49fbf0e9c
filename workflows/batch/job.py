"""A whole batch run: read the manifest, reach Ray, resolve the weights, schedule every row,
consolidate the tables and record run.json. The manifest is streamed, in-flight work is
bounded, results are written per pair by the workers (so the driver holds no list of results)
and consolidated at the end."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workflows.batch.cluster import connect, plan_workers
from workflows.batch.config import RunConfig
from workflows.batch.manifest import Manifest, Shard
from workflows.batch.outputs import consolidate, done_ids, done_inputs, now
from workflows.batch.scheduler import RunCounts, schedule
from workflows.errors import InputError, StorageError
from workflows.storage import (
    StorageOptions,
    check_folder,
    configure,
    filesystem,
    join,
    read_bytes,
    with_retries,
    write_bytes,
)
from workflows.version import package_version
from workflows.weights import resolve_weights


def run_job(cfg: RunConfig) -> RunCounts:
    """Run a whole manifest; raises ManifestError / InputError for fatal problems."""
    options = dict(cfg.storage_options or {})
    if os.environ.get("AWS_ENDPOINT_URL"):  # forwarded to the workers with the options
        options.setdefault("endpoint_url", os.environ["AWS_ENDPOINT_URL"])
    cfg = dataclasses.replace(cfg, storage_options=options)
    configure(cfg.storage_retry_s)
    with Manifest(cfg.manifest, options, cfg.limit, cfg.shard) as manifest:
        if manifest.note:
            print(manifest.note, file=sys.stderr)
        return _run(cfg, manifest, options)


def _run(cfg: RunConfig, manifest: Manifest, options: StorageOptions) -> RunCounts:
    check_folder(cfg.output, "--output", options)
    fixed = connect(cfg.address, cfg.connect_timeout_s)  # before anything is written to --output
    plan = plan_workers(cfg, fixed)  # a worker that cannot fit a local Ray: before work too
    meta = _metadata(cfg, now(), manifest.num_rows)
    record = record_uri(cfg.output, cfg.shard)
    records = _read_records(cfg.output, options)
    previous = records.get(record)
    _warn_running(cfg.shard, record, records)
    try:
        weights = resolve_weights(cfg.model, cfg.weights, options)
    except InputError as e:  # no pair ran: say so in run.json
        _mark_failed(record, meta, str(e), options)
        raise
    meta["weights_identity"] = weights.identity
    finished = _finished_pairs(cfg.output, manifest, records.values(), meta, options)
    meta = _history(meta, previous, bool(finished))
    _write_run_json(record, meta | {"status": "running"}, options)
    _say_plan(cfg, plan, manifest, len(finished))
    counts = RunCounts()  # filled as pairs finish: an interrupted run's count what they did
    try:
        with _sigterm_interrupts() as received:
            schedule(cfg, manifest.rows(), finished, weights, manifest.tag_fields,
                     manifest.shard_rows, plan, counts)  # fmt: skip
            if cfg.shard is None:  # a shard's driver leaves it to a last run over all rows
                consolidate(cfg.output, manifest.rows(), manifest.tag_fields, options)
    except KeyboardInterrupt:  # finished pairs keep their files: the same command resumes
        stopped = {"status": "interrupted", "finished_at": now().isoformat()}
        stopped |= _counted(meta, counts)
        _write_run_json(record, meta | stopped, options)
        if received:  # Ray's wait turns the handler's exception into a bare KeyboardInterrupt
            raise Interrupted(received[0]) from None
        raise
    except Exception as e:  # e.g. a bug: run.json must not go on saying running
        _mark_crashed(record, meta, e, options)
        raise
    meta |= {"status": "finished", "finished_at": now().isoformat()} | _counted(meta, counts)
    _write_run_json(record, meta, options)
    return counts


def record_uri(output: str, shard: Shard | None) -> str:
    """The run's record: run.json, or for one shard's driver run.shard-K-of-N.json."""
    return join(output, "run.json" if shard is None else f"run.{shard.name}.json")


def _read_records(output: str, options: StorageOptions) -> dict[str, dict[str, Any]]:
    """The run records (run.json, run.shard-*.json) that earlier runs left in `output`, by URI
    (an unreadable one is left out)."""
    fs, path = filesystem(output, options)
    try:
        listing = with_retries(output, lambda: fs.ls(path, detail=False, refresh=True))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in listing]
    records = {}
    for name in names:
        if name == "run.json" or (name.startswith("run.shard-") and name.endswith(".json")):
            meta = _read_run_json(join(output, name), options)
            if meta is not None:
                records[join(output, name)] = meta
    return records


def _warn_running(shard: Shard | None, record: str, records: dict[str, dict[str, Any]]) -> None:
    """A warning for each record of a run still running (or killed) that would redo this one's
    pairs: its own earlier one, or any other but another shard's (shards share no rows)."""
    for uri, meta in records.items():
        other_shard = shard is not None and uri != record and "/run.shard-" in uri
        if meta.get("status") == "running" and not other_shard:
            print(f"WARNING: {uri} says a run started at {meta.get('started_at')} is still "
                  "running (or was killed): two runs writing one --output redo each other's "
                  "pairs", file=sys.stderr)  # fmt: skip


def _history(
    meta: dict[str, Any], previous: dict[str, Any] | None, resumed: bool
) -> dict[str, Any]:
    """This invocation's run.json keys, plus, when it resumes a run (its output holds finished
    pairs), that run's first start, invocation count and cumulative counts so far."""
    first = {"first_started_at": meta["started_at"], "invocations": 1}
    if not resumed or previous is None:
        return meta | first | {"cumulative_counts": {}}
    first["first_started_at"] = previous.get("first_started_at", previous.get("started_at"))
    first["invocations"] = int(previous.get("invocations", 1)) + 1
    before = previous.get("cumulative_counts", previous.get("counts")) or {}
    return meta | first | {"cumulative_counts": before}


def _counted(meta: dict[str, Any], counts: RunCounts) -> dict[str, Any]:
    """run.json's `counts` (this invocation) and `cumulative_counts` (every invocation of the
    run: pairs that ran ok or failed, retries; a pair skipped as already ok is not counted
    again)."""
    this = counts.as_dict()
    total = dict(meta.get("cumulative_counts") or {})
    for key, value in this.items():
        if key != "skipped":
            total[key] = int(total.get(key, 0)) + value
    return {"counts": this, "cumulative_counts": total}


def _say_plan(cfg: RunConfig, plan: tuple[float, int], manifest: Manifest, finished: int) -> None:
    """One line before the work (the head of a job's log): what runs where."""
    gpus, workers = plan
    done = f" ({finished} pairs already done in it)" if finished else ""
    rows = f"{manifest.num_rows} manifest rows"
    if cfg.shard is not None:
        rows = f"{manifest.shard_rows} of {rows} (shard {cfg.shard})"
    print(f"{rows}; {workers} workers of {gpus:g} GPU and {cfg.cpus_per_task:g} "
          f"CPU (--pairs-per-gpu {cfg.pairs_per_gpu}); output {cfg.output}{done}",
          file=sys.stderr)  # fmt: skip


def _finished_pairs(
    output: str,
    manifest: Manifest,
    records: Iterable[dict[str, Any]],
    meta: dict[str, Any],
    options: StorageOptions,
) -> dict[str, str]:
    """Done pair ids in `output` → the inputs fingerprint their marker records ('' unknown);
    InputError when they were made with other result settings than this run's, by the record
    of any run into `output` (nothing written yet)."""
    done = done_ids(output, options)
    if done:
        for previous in records:
            _check_same_settings(previous, meta, len(done), output)
    if not manifest.gives_ids:  # a derived id is its inputs' fingerprint: no need to read
        return dict.fromkeys(done, "")
    return done_inputs(output, done, options)  # a given id's row may have been edited


class Interrupted(KeyboardInterrupt):
    """SIGTERM (`ray job stop`, a scheduler or `kill`) received during a run: handled as Ctrl-C
    is, so that run.json says the run was interrupted. `signum` gives the exit status 128+n."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _sigterm_interrupts() -> Iterator[list[int]]:
    """Within the block SIGTERM raises `Interrupted` in the main thread (replacing Ray's
    handler, which aborts the process with a stack dump) and is appended to the list yielded;
    elsewhere nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# run.json keys whose value changes what a pair's results mean, and their flags: a resumed run
# must keep them, or results.parquet would mix pairs made under different settings.
_RESULT_SETTINGS = {"model": "--model", "weights_identity": "--weights",
                    "precision": "--precision", "yardstick_size": "--yardstick-size"}  # fmt: skip


def _check_same_settings(
    previous: dict[str, Any] | None, meta: dict[str, Any], finished: int, output: str
) -> None:
    """InputError when `output` holds finished pairs made with other result settings (keys
    that an earlier version did not record are not compared)."""
    changed = [
        f"{flag} {previous[key]} (this run: {meta[key]})"
        for key, flag in _RESULT_SETTINGS.items()
        if previous is not None and key in previous and previous[key] != meta[key]
    ]
    if changed:
        raise InputError(
            f"{output} holds {finished} finished pairs made with {', '.join(changed)}; resuming "
            "would mix both in one results table: use another --output, or that run's settings"
        )


def _read_run_json(uri: str, options: StorageOptions) -> dict[str, Any] | None:
    """The run record an earlier run left at `uri`, or None (none, or unreadable)."""
    try:
        meta = json.loads(read_bytes(uri, options))
    except (InputError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _metadata(cfg: RunConfig, started: Any, num_rows: int) -> dict[str, Any]:
    return {
        "manifest": cfg.manifest,
        "output": cfg.output,
        "rows": num_rows,
        "shard": None if cfg.shard is None else str(cfg.shard),
        "model": cfg.model,
        "precision": cfg.precision,
        "compile": cfg.compile,
        "yardstick_size": cfg.yardstick_size,
        "yardstick_every": cfg.yardstick_every,
        "weights": cfg.weights if "://" not in cfg.weights else cfg.weights.split("?")[0],
        "package_version": package_version(),
        **source_revision(),
        "started_at": started.isoformat(),
    }


def source_revision() -> dict[str, Any]:
    """The code's git commit (`git_commit`, and `git_dirty` when tracked files differ from it),
    so that a table can be traced to the code that made it: from the checkout this package runs
    from; else from NST_GIT_COMMIT (e.g. set in a job's runtime_env, whose uploaded working dir
    has no .git); else null."""
    source = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True,
                                  text=True, timeout=10)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD") if (source / ".git").exists() else None
    if commit is None:
        return {"git_commit": os.environ.get("NST_GIT_COMMIT") or None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(git("status", "--porcelain", "-uno"))}


def _mark_failed(record: str, meta: dict[str, Any], error: str, options: StorageOptions) -> None:
    """The run record says `failed`, with `error`."""
    failed = {"status": "failed", "error": error, "finished_at": now().isoformat()}
    _write_run_json(record, meta | failed, options)


def _mark_crashed(
    record: str, meta: dict[str, Any], error: Exception, options: StorageOptions
) -> None:
    """_mark_failed with an unexpected error's type and first line (not when the store is what
    failed: writing would only retry it again), never masking that error."""
    if isinstance(error, StorageError):
        return
    first = (str(error).strip().splitlines() or [""])[0]
    message = f"{type(error).__name__}: {first}" if first else type(error).__name__
    try:
        _mark_failed(record, meta, message, options)
    except Exception:  # the original error is what the user must see
        pass


def _write_run_json(record: str, meta: dict[str, Any], options: StorageOptions) -> None:
    try:
        write_bytes(record, json.dumps(meta, indent=2).encode(), options)
    except OSError as e:
        folder = record.rsplit("/", 1)[0]
        raise InputError(f"{folder}: output not writable ({e})") from None
