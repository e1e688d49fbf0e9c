"""The Ray actor that stylizes pairs. One actor per GPU (or CPU slot); it keeps its VGG trunks
for its whole life, so the network is loaded once per worker process, not once per pair.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import ray
import torch

from manifests.manifest import ManifestRow
from nst_ops.optimize import batch_groups
from nst_ops.params import ParamError
from workflows.errors import InputError, StorageError
from workflows.images import to_png
from workflows.outputs import (
    done_uri,
    image_uri,
    losses_uri,
    now,
    result_record,
    result_table,
    result_uri,
)
from workflows.pair import (
    ExtractorCache,
    LoadedPair,
    PairInput,
    PairOutcome,
    load_pair,
    measure,
    stylize_loaded,
)
from workflows.storage import StorageOptions, configure, write_bytes
from workflows.tables import loss_table, parquet_bytes
from workflows.weights import ResolvedWeights


@dataclass(frozen=True)
class WorkerConfig:
    output: str
    options: StorageOptions
    tag_fields: list[pa.Field]
    max_pixels: int
    cpus: int
    yardstick_size: int = 256
    storage_retry_s: float = 60.0
    precision: str = "fp32"


def write_result(cfg: WorkerConfig, row: ManifestRow, record: dict[str, Any]) -> None:
    """Write a row's result; for an ok row the done marker last (the commit point)."""
    table = result_table(record, cfg.tag_fields)
    write_bytes(result_uri(cfg.output, row), parquet_bytes(table), cfg.options)
    if record["status"] == "ok":
        write_bytes(done_uri(cfg.output, row.pair_id), b"", cfg.options)


class PairWorker:
    """Ray actor body (wrapped with ray.remote by the driver)."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        configure(cfg.storage_retry_s)
        self.gpu_ids = [int(g) for g in ray.get_gpu_ids()]
        cuda = bool(self.gpu_ids) and torch.cuda.is_available()
        self.device = torch.device("cuda", 0) if cuda else torch.device("cpu")
        if not cuda:
            torch.set_num_threads(max(1, cfg.cpus))
        self.extractors: ExtractorCache | None = None
        self.node = ray.util.get_node_ip_address()

    def _extractors(self, weights_ref: list[Any]) -> ExtractorCache:
        """Weights come from the object store on first use (and again after a restart)."""
        if self.extractors is None:
            weights: ResolvedWeights = ray.get(weights_ref[0])
            self.extractors = ExtractorCache(weights, self.device, self.cfg.precision)
        return self.extractors

    def info(self) -> dict[str, Any]:
        """For tests and logs: process id, model builds so far, GPU ids."""
        builds = self.extractors.builds if self.extractors else 0
        return {"pid": os.getpid(), "builds": builds, "gpu_ids": self.gpu_ids}

    def run(
        self, rows: list[ManifestRow], attempt: int, weights_ref: list[Any]
    ) -> list[dict[str, Any]]:
        """Stylize valid rows, those that form a batch together (pairs-per-gpu), and write
        each row's outputs and result. Returns a small summary per row for the driver.

        `weights_ref` is [ObjectRef of ResolvedWeights] (nested: resolved here, once)."""
        base = self._base(attempt)
        loaded: dict[int, LoadedPair] = {}
        done: dict[int, Outcome] = {}
        load_s: dict[int, float] = {}  # each row's own reading and decoding time
        for i, row in enumerate(rows):
            start = time.perf_counter()
            try:
                loaded[i] = self._load(row, self._extractors(weights_ref))
            except (InputError, ParamError, StorageError) as e:
                done[i] = ("error", _message(e), {})
            load_s[i] = time.perf_counter() - start
            if i in done:
                done[i][2]["wall_s"] = load_s[i]
        order = list(loaded)
        for group in batch_groups([loaded[i].pair for i in order]):
            members = [order[g] for g in group]
            start = time.perf_counter()
            outcomes = self._run_group(
                [rows[i] for i in members],
                [loaded[i] for i in members],
                self._extractors(weights_ref),
            )
            # the group's own time, its loading included: a later group's pairs do not
            # count the earlier groups of the same call (the report sums wall_s / batch_size)
            wall = time.perf_counter() - start + sum(load_s[i] for i in members)
            for i, outcome in zip(members, outcomes, strict=True):
                done[i] = outcome
                done[i][2]["wall_s"] = wall
        return [self._report(row, done[i], base) for i, row in enumerate(rows)]

    def _base(self, attempt: int) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "gpu_ids": self.gpu_ids,
            "node": self.node,
            "attempt": attempt,
            "started_at": now(),
        }

    def _report(self, row: ManifestRow, outcome: Outcome, base: dict[str, Any]) -> dict[str, Any]:
        status, error, columns = outcome
        columns = columns | {"finished_at": now()}
        try:
            write_result(self.cfg, row, result_record(row, status, error, **base, **columns))
        except StorageError as e:
            status, error = "error", f"storage error: {e}"
        return {"pair_id": row.pair_id, "status": status, "error": error}

    def _load(self, row: ManifestRow, extractors: ExtractorCache) -> LoadedPair:
        assert row.params is not None
        values = row.values
        pair = PairInput(
            values["content_uri"],
            values["style_uri"],
            row.params,
            values.get("content_mask_uri"),
            values.get("style_mask_uri"),
        )
        cfg = self.cfg
        return load_pair(pair, extractors, cfg.options, cfg.max_pixels, cfg.yardstick_size)

    def _run_group(
        self, rows: list[ManifestRow], group: list[LoadedPair], extractors: ExtractorCache
    ) -> list[Outcome]:
        """Stylize one batch and write each pair's image and loss table."""
        n = len(group)
        try:
            results = stylize_loaded(group, extractors)
        except (InputError, ParamError) as e:
            return [("error", str(e), {}) for _ in group]
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if n > 1:  # the batch did not fit: each pair alone may
                return [
                    self._run_group([r], [p], extractors)[0]
                    for r, p in zip(rows, group, strict=True)
                ]
            size = group[0].pair.params.image_size
            return [("error", f"out of GPU memory at image_size {size}", {})]
        outcomes = []
        for row, loaded, result in zip(rows, group, results, strict=True):
            done = measure(loaded, result, extractors, self.cfg.yardstick_size)
            try:
                outcomes.append(self._write(row, done, n))
            except StorageError as e:
                outcomes.append(("error", _message(e), {}))
        return outcomes

    def _write(self, row: ManifestRow, done: PairOutcome, batch_size: int) -> Outcome:
        """Write the pair's image and loss table; (status, error, result columns)."""
        cfg, result, log = self.cfg, done.result, done.result.losses
        out = image_uri(cfg.output, row.pair_id)
        write_bytes(out, to_png(result.image), cfg.options)
        table = parquet_bytes(loss_table(log, row.pair_id))
        write_bytes(losses_uri(cfg.output, row.pair_id), table, cfg.options)
        columns: dict[str, Any] = {
            "output_uri": out,
            "iterations_run": result.iterations_run,
            **{f"final_{name}_loss": values[-1] for name, values in log.terms.items()},
            "warnings": list(result.warnings),
            "iterations_to_target": done.iterations_to_target,
            "batch_size": batch_size,
        }
        if done.yardstick is not None:
            columns["yardstick_content_loss"] = done.yardstick.content_loss
            columns["yardstick_style_loss"] = done.yardstick.style_loss
            columns["yardstick_total"] = done.yardstick.total
        if result.diverged_at is not None:
            at = result.diverged_at
            return (
                "diverged",
                f"loss became non-finite at iteration {at}; kept the best finite image",
                columns,
            )
        return "ok", None, columns


Outcome = tuple[str, str | None, dict[str, Any]]


def _message(e: Exception) -> str:
    return f"storage error: {e}" if isinstance(e, StorageError) else str(e)
