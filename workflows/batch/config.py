"""Typed settings of a batch run, beside the code that reads them (nanoGPT-style): `RunConfig`
for the driver (`nst run`'s flags, one field each, defaults written here only) and
`WorkerConfig`, the part every worker needs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nst_ops.evaluation import DEFAULT_COMPILE
from nst_ops.vgg import DEFAULT_PRECISION
from workflows.batch.manifest import Shard
from workflows.images import DEFAULT_MAX_PIXELS
from workflows.storage import StorageOptions
from workflows.weights import DEFAULT_MODEL, DEFAULT_WEIGHTS


@dataclass(frozen=True)
class RunConfig:
    """Run-level settings of `nst run` (per-pair settings live in the manifest). Each field is
    the flag of the same name (`--gpus-per-task`; `*_s` fields are `--*-seconds`)."""

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
    shard: Shard | None = None  # this driver's part of the manifest, one of several drivers'
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    yardstick_size: int = 256
    yardstick_every: int = 0
    storage_retry_s: float = 60.0
    connect_timeout_s: float = 30.0
    precision: str = DEFAULT_PRECISION
    compile: str = DEFAULT_COMPILE
    quiet: bool = False

    def worker(self, tag_fields: list[pa.Field]) -> WorkerConfig:
        """What the workers need of it (its fields of the same names), with the storage
        options resolved and the manifest's tag columns."""
        mine = {f.name for f in dataclasses.fields(self)}
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(WorkerConfig)
                  if f.name in mine}  # fmt: skip
        return WorkerConfig(options=self.storage_options or {}, tag_fields=tag_fields, **shared)


def run_default(name: str) -> Any:
    """The default of RunConfig field `name` (for the flags' defaults and help)."""
    return {f.name: f.default for f in dataclasses.fields(RunConfig)}[name]


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of a worker: where outputs go, storage, limits and the device setup. Built by
    RunConfig.worker: each field but `options` and `tag_fields` is the RunConfig field of the
    same name (its default written there only)."""

    output: str
    options: StorageOptions
    tag_fields: list[pa.Field]
    max_image_pixels: int
    cpus_per_task: int
    yardstick_size: int
    yardstick_every: int  # the yardstick also at loss rows N, 2N, … (0: at the end only)
    storage_retry_s: float
    precision: str
    compile: str
