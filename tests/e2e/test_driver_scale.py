"""benchmarks.driver_scale on a few rows: what it writes is what the driver reads back — every
done marker found by the resume scan, every result and loss row consolidated."""

from __future__ import annotations

import importlib

import pyarrow.parquet as pq
from conftest import REPO


def test_driver_scale_counts_what_it_wrote(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is no installed package
    bench = importlib.import_module("benchmarks.driver_scale").bench
    numbers = bench(str(tmp_path), 40)
    assert numbers["rows"] == 40 and numbers["consolidate_wall_s_per_10k"] > 0
    results = pq.read_table(tmp_path / "results.parquet")
    assert results.num_rows == 40 and set(results.column("status").to_pylist()) == {"ok"}
    assert pq.read_table(tmp_path / "losses.parquet").num_rows == 40 * 11


def test_driver_scale_schedules_every_row(monkeypatch) -> None:
    """--schedule: every row of the manifest reaches a (null) worker and comes back ok."""
    import ray

    import workflows.batch.pool as pool

    monkeypatch.syspath_prepend(str(REPO))
    bench = importlib.import_module("benchmarks.driver_scale")
    assert not ray.is_initialized()
    numbers = bench.bench_schedule(30, workers=2)  # asserts 30 ok itself
    assert numbers["rows"] == 30 and numbers["driver_cpu_ms_per_pair"] > 0
    assert vars(pool)["PairWorker"].__name__ == "PairWorker"  # the real worker is back
