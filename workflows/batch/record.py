"""A run's record in its --output: run.json (run.shard-K-of-N.json for one shard's driver), as
the typed `RunRecord`: what ran (manifest, settings, code), its status, this invocation's and
every invocation's counts. Written when the run starts (`running`) and when it ends."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.batch.config import RunConfig
from workflows.batch.manifest import Shard
from workflows.errors import InputError
from workflows.storage import (
    StorageOptions,
    join,
    list_names,
    read_bytes,
    write_bytes,
)
from workflows.version import package_version

# Record fields whose value changes what a pair's results mean, and their flags: a resumed run
# must keep them, or results.parquet would mix pairs made under different settings.
RESULT_SETTINGS = {"model": "--model", "weights_identity": "--weights",
                   "precision": "--precision", "yardstick_size": "--yardstick-size"}  # fmt: skip


@dataclass
class RunRecord:
    """One run of `nst run` into an --output (README: "run.json"). A field that the version
    which wrote a record did not have reads as its default (None: unknown)."""

    manifest: str | None = None
    output: str | None = None
    rows: int | None = None
    shard: str | None = None  # "K/N", or None for a run over every row
    model: str | None = None
    precision: str | None = None
    compile: str | None = None
    yardstick_size: int | None = None
    yardstick_every: int | None = None
    weights: str | None = None  # the --weights given (a presigned URL without its query)
    weights_identity: str | None = None  # sha256 prefix of the weights, or "random"
    package_version: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    status: str = "running"  # running, finished, interrupted, failed
    error: str | None = None  # why it failed
    first_started_at: str | None = None  # the run's first invocation
    invocations: int = 1
    started_at: str | None = None  # this invocation's
    finished_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # this invocation's
    cumulative_counts: dict[str, int] = field(default_factory=dict)  # every invocation's

    @classmethod
    def starting(cls, cfg: RunConfig, started: str, rows: int) -> RunRecord:
        """The record of an invocation that starts now."""
        weights = cfg.weights if "://" not in cfg.weights else cfg.weights.split("?")[0]
        return cls(manifest=cfg.manifest, output=cfg.output, rows=rows,
                   shard=None if cfg.shard is None else str(cfg.shard), model=cfg.model,
                   precision=cfg.precision, compile=cfg.compile,
                   yardstick_size=cfg.yardstick_size, yardstick_every=cfg.yardstick_every,
                   weights=weights, package_version=package_version(), **source_revision(),
                   started_at=started, first_started_at=started)  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A record as read back; keys of other versions are ignored, missing ones default
        (an older record's `counts` stand for its cumulative counts)."""
        known = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        if "cumulative_counts" not in data:
            record.cumulative_counts = dict(record.counts)
        if "first_started_at" not in data:
            record.first_started_at = record.started_at
        return record

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2).encode()

    def resuming(self, previous: RunRecord | None) -> RunRecord:
        """This invocation's record continuing `previous`'s run (the output holds its finished
        pairs): its first start, invocation count and cumulative counts so far."""
        if previous is None:
            return self
        return dataclasses.replace(self, first_started_at=previous.first_started_at,
                                   invocations=previous.invocations + 1,
                                   cumulative_counts=dict(previous.cumulative_counts))  # fmt: skip

    def ended(self, status: str, finished_at: str, counts: dict[str, int] | None = None,
              error: str | None = None) -> RunRecord:  # fmt: skip
        """The record at the invocation's end: `counts` (this invocation's) are added to the
        cumulative ones (every invocation of the run; a pair skipped as already ok is not
        counted again)."""
        total = dict(self.cumulative_counts)
        for key, value in (counts or {}).items():
            if key != "skipped":
                total[key] = int(total.get(key, 0)) + value
        return dataclasses.replace(self, status=status, finished_at=finished_at, error=error,
                                   counts=dict(counts or {}), cumulative_counts=total)  # fmt: skip

    def changed_settings(self, other: RunRecord) -> list[str]:
        """The result settings in which `other` differs from this record, as "FLAG value (this
        run: value)"; a setting either record lacks (an older version) is not compared."""
        out = []
        for name, flag in RESULT_SETTINGS.items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                out.append(f"{flag} {theirs} (this run: {mine})")
        return out


def record_uri(output: str, shard: Shard | None) -> str:
    """The run's record: run.json, or for one shard's driver run.shard-K-of-N.json."""
    return join(output, "run.json" if shard is None else f"run.{shard.name}.json")


def read_record(uri: str, options: StorageOptions) -> RunRecord | None:
    """The record an earlier run left at `uri`, or None (none, or unreadable)."""
    try:
        data = json.loads(read_bytes(uri, options))
    except (InputError, ValueError):
        return None
    return RunRecord.from_json(data) if isinstance(data, dict) else None


def read_records(output: str, options: StorageOptions) -> dict[str, RunRecord]:
    """The records (run.json, run.shard-*.json) that earlier runs left in `output`, by URI
    (an unreadable one is left out)."""
    records = {}
    for name in list_names(output, options):
        if name == "run.json" or (name.startswith("run.shard-") and name.endswith(".json")):
            record = read_record(join(output, name), options)
            if record is not None:
                records[join(output, name)] = record
    return records


def write_record(uri: str, record: RunRecord, options: StorageOptions) -> None:
    """InputError (the output not writable) when it cannot be written."""
    try:
        write_bytes(uri, record.to_json(), options)
    except OSError as e:
        raise InputError(f"{uri.rsplit('/', 1)[0]}: output not writable ({e})") from None


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
