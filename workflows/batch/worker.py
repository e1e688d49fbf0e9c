"""The Ray actor that stylizes pairs. One actor per GPU (or CPU slot); it keeps its VGG trunks
for its whole life, so the network is loaded once per worker process, not once per pair.

A call's rows go one straight line here: load every row → group the loaded pairs into batches
(nst_ops.optimize.batch_groups) → per group: stylize → measure (yardstick) → write the image and
loss table → one PairResult per pair → its results row and done marker.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import torch
from torch import Tensor

from manifests.manifest import ManifestRow
from manifests.results import PairResult, Status
from nst_ops.optimize import StyleResult, batch_groups
from nst_ops.params import ParamError
from nst_ops.yardstick import DEFAULTS as YARDSTICK_PARAMS
from nst_ops.yardstick import Yardstick, yardstick
from workflows.batch.config import WorkerConfig
from workflows.batch.outputs import auto_mask_uris, image_uri, losses_uri, now, write_result
from workflows.errors import InputError, StorageError
from workflows.extractors import ExtractorCache
from workflows.images import resize_long_side, to_png, to_tensor
from workflows.pair import LoadedPair, PairInput, load_pair, stylize_loaded
from workflows.storage import configure, write_bytes
from workflows.tables import loss_table, parquet_bytes
from workflows.weights import ResolvedWeights


@dataclass
class _Member:
    """A row of the call on its way: loaded (or why not), and the seconds spent loading it."""

    row: ManifestRow
    loaded: LoadedPair | None
    error: str | None
    load_s: float
    started_at: Any


class PairWorker:
    """Ray actor body (wrapped with ray.remote by the driver)."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        configure(cfg.storage_retry_s)
        self.gpu_ids = tuple(int(g) for g in ray.get_gpu_ids())
        cuda = bool(self.gpu_ids) and torch.cuda.is_available()
        self.device = torch.device("cuda", 0) if cuda else torch.device("cpu")
        if not cuda:
            torch.set_num_threads(max(1, cfg.cpus_per_task))
        self.extractors: ExtractorCache | None = None
        self.node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self.node_id = ray.get_runtime_context().get_node_id()

    def _extractors(self, weights_ref: list[Any]) -> ExtractorCache:
        """Weights come from the object store on first use (and again after a restart)."""
        if self.extractors is None:
            weights: ResolvedWeights = ray.get(weights_ref[0])
            self.extractors = ExtractorCache(
                weights, self.device, self.cfg.precision, self.cfg.compile
            )
        return self.extractors

    def info(self) -> dict[str, Any]:
        """For the driver, tests and logs: process id, model builds so far, GPU ids, node."""
        builds = self.extractors.builds if self.extractors else 0
        return {"pid": os.getpid(), "builds": builds, "gpu_ids": list(self.gpu_ids),
                "node_id": self.node_id}  # fmt: skip

    def run(
        self, rows: list[ManifestRow], attempt: int, weights_ref: list[Any]
    ) -> list[PairResult]:
        """Stylize valid rows, those that form a batch together (pairs-per-gpu), and write
        each row's outputs and result. Returns each row's PairResult, in order.

        `weights_ref` is [ObjectRef of ResolvedWeights] (nested: resolved here, once)."""
        extractors = self._extractors(weights_ref)
        members = [self._load(row, extractors) for row in rows]
        results: dict[int, PairResult] = {}
        for i, m in enumerate(members):
            if m.loaded is None:
                results[i] = self._placed(m, attempt, m.load_s, PairResult(Status.ERROR, m.error))
        ready = [i for i, m in enumerate(members) if m.loaded is not None]
        for group in batch_groups([members[i].loaded.pair for i in ready]):  # type: ignore[union-attr]
            chosen = [ready[g] for g in group]
            done = self._group([members[i] for i in chosen], attempt, extractors)
            results.update(zip(chosen, done, strict=True))
        return [self._commit(m.row, results[i]) for i, m in enumerate(members)]

    def _load(self, row: ManifestRow, extractors: ExtractorCache) -> _Member:
        start, started_at = time.perf_counter(), now()
        assert row.params is not None
        values = row.values
        source = PairInput(
            values["content_uri"],
            values["style_uri"],
            row.params,
            values.get("content_mask_uri"),
            values.get("style_mask_uri"),
        )
        cfg, loaded, error = self.cfg, None, None
        try:
            every = cfg.yardstick_every if cfg.yardstick_size > 0 else 0
            loaded = load_pair(source, extractors, cfg.options, cfg.max_image_pixels,
                               cfg.yardstick_size, snapshot_every=every)  # fmt: skip
        except (InputError, ParamError, StorageError) as e:
            error = _message(e)
        return _Member(row, loaded, error, time.perf_counter() - start, started_at)

    def _group(
        self, members: list[_Member], attempt: int, extractors: ExtractorCache
    ) -> list[PairResult]:
        """One batch: stylize → measure → write each pair's image and loss table. wall_s is
        the group's own time (its pairs' loading included), shared by its pairs."""
        start = time.perf_counter()
        loaded = [m.loaded for m in members if m.loaded is not None]
        outputs: list[StyleResult | None] = [None] * len(members)
        failure = None
        try:
            outputs = list(stylize_loaded(loaded, extractors))
        except (InputError, ParamError) as e:
            failure = str(e)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(members) > 1:  # the batch did not fit: each pair alone may
                return [self._group([m], attempt, extractors)[0] for m in members]
            failure = f"out of GPU memory at image_size {loaded[0].pair.params.image_size}"
        n = len(members)
        finished = [
            self._finish(m, out, failure, n) for m, out in zip(members, outputs, strict=True)
        ]
        wall = time.perf_counter() - start + sum(m.load_s for m in members)
        return [self._placed(m, attempt, wall, f) for m, f in zip(members, finished, strict=True)]

    def _finish(
        self, m: _Member, out: StyleResult | None, failure: str | None, batch_size: int
    ) -> PairResult:
        """Measure and write one pair of a group → its outcome (where and when: `_placed`)."""
        if out is None:
            return PairResult(Status.ERROR, failure)
        assert m.loaded is not None
        measure = self._yardstick(m.loaded, out.image)  # one for the output and its snapshots
        yard = None if measure is None else measure(out.image)
        checkpoints = {} if measure is None else {
            i: measure(image) for i, image in out.snapshots.items()
        }  # fmt: skip
        if yard is not None:  # the last row: the output's, as in the results
            checkpoints[len(out.losses) - 1] = yard
        try:
            uri = self._write(m.row.pair_id, out, checkpoints)
            masks = self._write_masks(m.loaded, m.row.pair_id)
        except StorageError as e:
            return PairResult(Status.ERROR, _message(e))
        at = out.diverged_at
        return PairResult(
            Status.OK if at is None else Status.DIVERGED,
            None
            if at is None
            else f"loss became non-finite at iteration {at}; kept the best finite image",
            output_uri=uri,
            iterations_run=out.iterations_run,
            final_losses={name: values[-1] for name, values in out.losses.terms.items()},
            warnings=tuple(out.warnings),
            yardstick_content_loss=None if yard is None else yard.content_loss,
            yardstick_style_loss=None if yard is None else yard.style_loss,
            yardstick_total=None if yard is None else yard.total,
            yardstick_size=None if yard is None else self._yardstick_side(out.image),
            iterations_to_target=out.iterations_run if out.reached_target else None,
            auto_content_mask_uri=masks[0],
            auto_style_mask_uri=masks[1],
            auto_mask_s=m.loaded.auto_mask_s if m.loaded.auto_masks is not None else None,
            batch_size=batch_size,
            compile_s=out.compile_s,
        )

    def _write(self, pair_id: str, out: StyleResult, checkpoints: dict[int, Yardstick]) -> str:
        """The pair's image and loss table → the image's URI."""
        uri = image_uri(self.cfg.output, pair_id)
        write_bytes(uri, to_png(out.image), self.cfg.options)
        table = parquet_bytes(loss_table(out.losses, pair_id, checkpoints))
        write_bytes(losses_uri(self.cfg.output, pair_id), table, self.cfg.options)
        return uri

    def _write_masks(self, loaded: LoadedPair, pair_id: str) -> tuple[str | None, str | None]:
        """Automatic masks (mask URIs `auto`) written beside the image → their URIs."""
        if loaded.auto_masks is None:
            return None, None
        uris = auto_mask_uris(self.cfg.output, pair_id)
        for uri, mask in zip(uris, loaded.auto_masks, strict=True):
            write_bytes(uri, to_png(mask), self.cfg.options)
        return uris

    def _yardstick_side(self, image: Tensor) -> int:
        """The yardstick's long side for an output (3, H, W): --yardstick-size, or its own long
        side when that is smaller (an upsampled image would be judged on detail it never had)."""
        return min(self.cfg.yardstick_size, max(image.shape[-2:]))

    def _yardstick(self, loaded: LoadedPair, image: Tensor) -> Callable[[Tensor], Yardstick] | None:
        """nst_ops.yardstick for images of `image`'s size (3, H, W), with the same weights, at
        `_yardstick_side`: the content and style resized once; None when it is off."""
        if self.cfg.yardstick_size <= 0:
            return None
        size = self._yardstick_side(image)
        assert self.extractors is not None
        extractor = self.extractors.get(YARDSTICK_PARAMS)
        content = to_tensor(resize_long_side(loaded.content_image, size))
        style = to_tensor(resize_long_side(loaded.style_image, size))
        return lambda output: yardstick(extractor, output, content, style, size)

    def _placed(self, m: _Member, attempt: int, wall_s: float, outcome: PairResult) -> PairResult:
        """The pair's outcome with where and when it ran."""
        return dataclasses.replace(outcome, wall_s=wall_s, device=str(self.device),
                                   gpu_ids=self.gpu_ids, node=self.node, node_id=self.node_id,
                                   attempt=attempt, started_at=m.started_at,
                                   finished_at=now())  # fmt: skip

    def _commit(self, row: ManifestRow, result: PairResult) -> PairResult:
        """Write the results row (and, when ok, the done marker). A StorageError here (the
        output store unreachable for the whole retry budget) propagates: no outcome can be
        recorded any more, and the driver stops the run rather than fail every later row."""
        write_result(self.cfg, row, result)
        return result


def _message(e: Exception) -> str:
    return f"storage error: {e}" if isinstance(e, StorageError) else str(e)
