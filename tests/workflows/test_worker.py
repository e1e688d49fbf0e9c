"""The worker's bookkeeping of one call: a call whose rows split into several batches (content
sizes differ) gives each pair its own group's time, so device seconds are not counted twice; a
pair out of GPU memory or diverging fails alone, and the worker goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray
import torch
from runutil import worker_config

from manifests.manifest import parse_row
from workflows.batch import worker as worker_module
from workflows.batch.worker import PairWorker
from workflows.pair import stylize_loaded
from workflows.weights import resolve_weights

SLEEP = 1.5


def test_wall_s_is_each_groups_own_time(ray_cluster, tmp_path: Path, examples: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    real = stylize_loaded
    calls: list[int] = []

    def slow_first_group(pairs, extractors):
        calls.append(len(pairs))
        if len(calls) == 1:
            time.sleep(SLEEP)
        return real(pairs, extractors)

    monkeypatch.setattr(worker_module, "stylize_loaded", slow_first_group)
    cfg = worker_config(str(tmp_path / "out"), cpus_per_task=2, yardstick_size=0)
    worker = PairWorker(cfg)
    weights = [ray.put(resolve_weights("vgg16", "random"))]
    common = {"style_uri": str(examples / "style/wave.jpg"), "image_size": 32, "iterations": 2}
    tubingen, photo = (str(examples / p) for p in ("content/tubingen.jpg", "photo/content.jpg"))
    rows = [
        parse_row(1, common | {"content_uri": tubingen}),
        parse_row(2, common | {"content_uri": tubingen, "seed": 1}),
        parse_row(3, common | {"content_uri": photo}),  # 32x20: its own group
        parse_row(4, common | {"content_uri": str(tmp_path / "missing.jpg")}),
    ]
    start = time.perf_counter()
    outcomes = worker.run(rows, 1, weights)
    elapsed = time.perf_counter() - start
    assert [s.status for s in outcomes] == ["ok", "ok", "ok", "error"]
    assert calls == [2, 1]
    results = [
        pq.read_table(tmp_path / f"out/pairs/{r.pair_id}/result.parquet").to_pylist()[0]
        for r in rows
    ]
    first, second, third, failed = (r["wall_s"] for r in results)
    assert first == second >= SLEEP  # the batch of two shares its wall time
    assert 0 < third < SLEEP  # the second group does not count the first group's time
    assert 0 < failed < SLEEP  # a row that failed to load: its own loading time
    assert [r["batch_size"] for r in results] == [2, 2, 1, None]
    device_seconds = first / 2 + second / 2 + third + failed
    assert device_seconds <= elapsed


def test_out_of_gpu_memory_fails_the_row_and_the_worker_goes_on(
    ray_cluster, tmp_path, examples, weights_path, monkeypatch
) -> None:
    weights = ray.put(resolve_weights("vgg16", str(weights_path)))
    worker = PairWorker(worker_config(str(tmp_path / "out"), yardstick_size=0))
    real = stylize_loaded
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "stylize_loaded", flaky)
    values = {
        "content_uri": str(examples / "content/tubingen.jpg"),
        "style_uri": str(examples / "style/wave.jpg"),
        "image_size": 48,
        "iterations": 2,
    }
    (first,) = worker.run([parse_row(1, values)], 1, [weights])
    assert first.status == "error"
    assert first.error == "out of GPU memory at image_size 48"
    (second,) = worker.run([parse_row(2, values | {"seed": 1})], 1, [weights])
    assert second.status == "ok"
    # a batch that does not fit runs its pairs one by one
    calls["n"] = 0
    batch = [parse_row(3, values | {"seed": 2}), parse_row(4, values | {"style_weight": 10.0})]
    assert [s.status for s in worker.run(batch, 1, [weights])] == ["ok", "ok"]
    assert calls["n"] == 3  # the batch (out of memory), then each pair
    for row in batch:
        result = pq.read_table(tmp_path / "out" / "pairs" / row.pair_id / "result.parquet")
        assert result.column("batch_size").to_pylist() == [1]


def test_divergence_reports_status_diverged(ray_cluster, tmp_path, examples, weights_path) -> None:
    weights = ray.put(resolve_weights("vgg16", str(weights_path)))
    output = tmp_path / "out"
    worker = PairWorker(worker_config(str(output), yardstick_size=0))
    values = {
        "content_uri": str(examples / "content/tubingen.jpg"),
        "style_uri": str(examples / "style/wave.jpg"),
        "image_size": 32,
        "iterations": 3,
        "style_weight": 1e308,  # β·J_style overflows to inf
        "optimizer": "adam",
    }
    (outcome,) = worker.run([parse_row(1, values)], 1, [weights])
    assert outcome.status == "diverged" and not outcome.ok
    assert (outcome.error or "").startswith("loss became non-finite at iteration 0")
    row = parse_row(1, values)
    result = pq.read_table(output / "pairs" / row.pair_id / "result.parquet").to_pylist()[0]
    assert result["status"] == "diverged" and result["iterations_run"] == 0
    assert (output / "images" / f"{row.pair_id}.png").exists()
    assert not (output / "done" / row.pair_id).exists()  # a re-run tries it again
