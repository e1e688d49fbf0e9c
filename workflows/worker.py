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
from workflows.pair import ExtractorCache, PairInput, run_pair
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

    def run(self, row: ManifestRow, attempt: int, weights_ref: list[Any]) -> dict[str, Any]:
        """Stylize one valid row and write its outputs. Returns a small summary for the driver.

        `weights_ref` is [ObjectRef of ResolvedWeights] (nested: resolved here, once)."""
        started, t0 = now(), time.perf_counter()
        assert row.params is not None
        outcome: dict[str, Any] = {
            "device": str(self.device),
            "gpu_ids": self.gpu_ids,
            "node": self.node,
            "attempt": attempt,
            "started_at": started,
        }
        status, error = "ok", None
        try:
            status, error, written = self._stylize(row, self._extractors(weights_ref))
            outcome |= written
        except (InputError, ParamError) as e:
            status, error = "error", str(e)
        except StorageError as e:
            status, error = "error", f"storage error: {e}"
        except torch.cuda.OutOfMemoryError:
            status = "error"
            error = f"out of GPU memory at image_size {row.params.image_size}"
            torch.cuda.empty_cache()
        outcome |= {"wall_s": time.perf_counter() - t0, "finished_at": now()}
        write_result(self.cfg, row, result_record(row, status, error, **outcome))
        return {"pair_id": row.pair_id, "status": status, "error": error}

    def _stylize(
        self, row: ManifestRow, extractors: ExtractorCache
    ) -> tuple[str, str | None, dict[str, Any]]:
        """Run the pair, write its image and loss table; (status, error, result columns)."""
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
        done = run_pair(pair, extractors, cfg.options, cfg.max_pixels, None, cfg.yardstick_size)
        result, log = done.result, done.result.losses
        out = image_uri(cfg.output, row.pair_id)
        write_bytes(out, to_png(result.image), cfg.options)
        table = parquet_bytes(loss_table(log, row.pair_id))
        write_bytes(losses_uri(cfg.output, row.pair_id), table, cfg.options)
        columns: dict[str, Any] = {
            "output_uri": out,
            "iterations_run": result.iterations_run,
            "final_total_loss": log.total_loss[-1],
            "final_content_loss": log.content_loss[-1],
            "final_style_loss": log.style_loss[-1],
            "final_tv_loss": log.tv_loss[-1],
            "final_photo_loss": log.photo_loss[-1],
            "warnings": list(result.warnings),
            "iterations_to_target": done.iterations_to_target,
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
