"""A whole batch run: read the manifest, reach Ray, resolve the weights, schedule every row,
consolidate the tables and record run.json. The manifest is streamed, in-flight work is
bounded, results are written per pair by the workers (so the driver holds no list of results)
and consolidated at the end."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from workflows.batch.cluster import connect, plan_workers
from workflows.batch.config import RunConfig
from workflows.batch.manifest import Manifest, Shard
from workflows.batch.outputs import consolidate, done_ids, done_inputs, now
from workflows.batch.record import RunRecord, read_records, record_uri, write_record
from workflows.batch.scheduler import RunCounts, schedule
from workflows.errors import InputError, StorageError
from workflows.storage import StorageOptions, check_folder, configure
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
    record = RunRecord.starting(cfg, now().isoformat(), manifest.num_rows)
    uri = record_uri(cfg.output, cfg.shard)
    records = read_records(cfg.output, options)
    _warn_running(cfg.shard, uri, records)
    try:
        weights = resolve_weights(cfg.model, cfg.weights, options)
    except InputError as e:  # no pair ran: say so in run.json
        write_record(uri, record.ended("failed", now().isoformat(), error=str(e)), options)
        raise
    record.weights_identity = weights.identity
    finished = _finished_pairs(cfg.output, manifest, records.values(), record, options)
    record = record.resuming(records.get(uri) if finished else None)
    write_record(uri, record, options)
    _say_plan(cfg, plan, manifest, len(finished))
    counts = RunCounts()  # filled as pairs finish: an interrupted run's count what they did
    try:
        with _sigterm_interrupts() as received:
            schedule(cfg, manifest.rows(), finished, weights, manifest.tag_fields,
                     manifest.shard_rows, plan, counts)  # fmt: skip
            if cfg.shard is None:  # a shard's driver leaves it to a last run over all rows
                consolidate(cfg.output, manifest.rows(), manifest.tag_fields, options)
    except KeyboardInterrupt:  # finished pairs keep their files: the same command resumes
        stopped = record.ended("interrupted", now().isoformat(), counts.as_dict())
        write_record(uri, stopped, options)
        if received:  # Ray's wait turns the handler's exception into a bare KeyboardInterrupt
            raise Interrupted(received[0]) from None
        raise
    except Exception as e:  # e.g. a bug: run.json must not go on saying running
        _mark_crashed(uri, record, e, options)
        raise
    write_record(uri, record.ended("finished", now().isoformat(), counts.as_dict()), options)
    return counts


def _warn_running(shard: Shard | None, uri: str, records: dict[str, RunRecord]) -> None:
    """A warning for each record of a run still running (or killed) that would redo this one's
    pairs: its own earlier one, or any other but another shard's (shards share no rows)."""
    for other, record in records.items():
        other_shard = shard is not None and other != uri and record.shard is not None
        if record.status == "running" and not other_shard:
            print(f"WARNING: {other} says a run started at {record.started_at} is still "
                  "running (or was killed): two runs writing one --output redo each other's "
                  "pairs", file=sys.stderr)  # fmt: skip


def _say_plan(cfg: RunConfig, plan: tuple[float, int], manifest: Manifest, finished: int) -> None:
    """One line before the work (the head of a job's log): what runs where."""
    gpus, workers = plan
    done = f" ({finished} pairs already done in it)" if finished else ""
    rows = f"{manifest.num_rows} manifest rows"
    if cfg.shard is not None:
        rows = f"{manifest.shard_rows} of {rows} (shard {cfg.shard})"
    where = f"{workers} workers of {gpus:g} GPU and {cfg.cpus_per_task:g} CPU"
    if finished >= manifest.shard_rows:  # workers start with the first pair to run: none
        where = "no pair left to run, no worker starts"
    print(
        f"{rows}; {where} (--pairs-per-gpu {cfg.pairs_per_gpu}); output {cfg.output}{done}",
        file=sys.stderr,
    )


def _finished_pairs(
    output: str,
    manifest: Manifest,
    records: Iterable[RunRecord],
    record: RunRecord,
    options: StorageOptions,
) -> dict[str, str]:
    """Done pair ids in `output` → the inputs fingerprint their marker records ('' unknown);
    InputError when they were made with other result settings than this run's, by the record
    of any run into `output` (nothing written yet)."""
    done = done_ids(output, options)
    changed = list(dict.fromkeys(c for r in records for c in record.changed_settings(r)))
    if done and changed:
        raise InputError(
            f"{output} holds {len(done)} finished pairs made with {', '.join(changed)}; "
            "resuming would mix both in one results table: use another --output, or that "
            "run's settings"
        )
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


def _mark_crashed(uri: str, record: RunRecord, error: Exception, options: StorageOptions) -> None:
    """The record says `failed`, with an unexpected error's type and first line (not when the
    store is what failed: writing would only retry it again), never masking that error."""
    if isinstance(error, StorageError):
        return
    first = (str(error).strip().splitlines() or [""])[0]
    message = f"{type(error).__name__}: {first}" if first else type(error).__name__
    try:
        write_record(uri, record.ended("failed", now().isoformat(), error=message), options)
    except Exception:  # the original error is what the user must see
        pass
