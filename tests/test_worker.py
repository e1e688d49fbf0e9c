"""The worker's bookkeeping of one call: a call whose rows split into several batches (content
sizes differ) gives each pair its own group's time, so device seconds are not counted twice."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.manifest import parse_row
from workflows.batch import worker as worker_module
from workflows.batch.config import WorkerConfig
from workflows.batch.worker import PairWorker
from workflows.weights import resolve_weights

SLEEP = 1.5


def test_wall_s_is_each_groups_own_time(ray_cluster, tmp_path: Path, examples: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import ray

    real = worker_module.stylize_loaded
    calls: list[int] = []

    def slow_first_group(pairs, extractors):  # type: ignore[no-untyped-def]
        calls.append(len(pairs))
        if len(calls) == 1:
            time.sleep(SLEEP)
        return real(pairs, extractors)

    monkeypatch.setattr(worker_module, "stylize_loaded", slow_first_group)
    cfg = WorkerConfig(str(tmp_path / "out"), {}, [], 10**8, 2, yardstick_size=0)
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
