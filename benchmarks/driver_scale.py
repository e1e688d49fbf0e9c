"""The driver's own cost of resuming and consolidating a large run (issue 35, part of "one
driver's limit"): N finished pairs are written as `nst run`'s workers write them (result row,
an 11-row loss table, done marker), then the driver's two whole-run steps are timed — the
resume scan (listing done/ and reading every marker: workflows.batch.outputs.done_ids and
done_inputs) and consolidation (results.parquet + losses.parquet) — with process CPU time,
wall time and peak RSS, on the local filesystem or the moto S3 server. Scheduling's own cost
per pair is measured with `--schedule`: workflows.batch.scheduler.schedule streams an N-row
manifest to workers on local Ray (4 fake GPUs) that answer at once (a `NullWorker`: each call
returns ok PairResults, nothing is stylized or written), so what the driver process spends
(CPU time of all its threads: parsing rows, batching, Ray submissions and waits, unpickling
results) is all there is, in a fresh process per N (its peak RSS is the driver's).

    python -m benchmarks.driver_scale --rows 10000 100000 [--s3]
    python -m benchmarks.driver_scale --schedule --rows 10000 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from manifests.manifest import ManifestRow, parse_row
from manifests.results import PairResult, Status
from nst_ops.recorder import LossLog
from workflows.batch.outputs import (
    consolidate,
    done_ids,
    done_inputs,
    done_uri,
    losses_uri,
    result_table,
    result_uri,
)
from workflows.storage import write_bytes
from workflows.tables import loss_table, parquet_bytes


def rows_of(n: int) -> list[ManifestRow]:
    return [
        parse_row(i, {"content_uri": "c.jpg", "style_uri": "s.jpg", "seed": i, "iterations": 10})
        for i in range(n)
    ]


def _log(n: int) -> LossLog:
    log = LossLog()
    for i in range(n):
        log.iteration.append(i)
        for values in log.terms.values():
            values.append(1.0 / (i + 1))
        log.stage.append(1)
        log.scale.append(512)
        log.style_layer_losses.append({"relu1_1": 1.0})
        log.elapsed_s.append(0.01 * i)
        log.compile_s.append(0.0)
    return log


def write_pairs(output: str, rows: list[ManifestRow]) -> None:
    """What the workers leave for each ok pair (written with 32 threads)."""
    losses = parquet_bytes(loss_table(_log(11), "x"))
    result = PairResult(
        Status.OK, iterations_run=10, attempt=1, finished_at=dt.datetime.now(dt.UTC)
    )

    def one(row: ManifestRow) -> None:
        write_bytes(result_uri(output, row), parquet_bytes(result_table(row, result, [])))
        write_bytes(losses_uri(output, row.pair_id), losses)
        write_bytes(done_uri(output, row.pair_id), row.inputs.encode())

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, rows))


def measure(step: Callable[[], Any]) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, result) of step()."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = step()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def bench(output: str, n: int) -> dict[str, float]:
    rows = rows_of(n)
    write_pairs(output, rows)

    def resume() -> int:
        ids = done_ids(output)
        return len(done_inputs(output, ids))

    r_cpu, r_wall, found = measure(resume)
    assert found == n, (found, n)
    c_cpu, c_wall, (results, losses) = measure(lambda: consolidate(output, rows, []))
    assert (results, losses) == (n, 11 * n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": n, "resume_cpu_s": r_cpu, "resume_wall_s": r_wall,
            "consolidate_cpu_s_per_10k": c_cpu * 1e4 / n,
            "consolidate_wall_s_per_10k": c_wall * 1e4 / n, "peak_rss_mib": rss}  # fmt: skip


class NullWorker:
    """Stands in for workflows.batch.worker.PairWorker: answers each call at once with an ok
    PairResult per row, as a worker's would look (filled outcome fields)."""

    def __init__(self, _cfg: Any) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()

    def info(self) -> dict[str, Any]:
        return {"pid": 0, "builds": 0, "gpu_ids": [0], "node_id": self.node_id}

    def run(self, rows: list[ManifestRow], attempt: int, _weights: Any) -> list[PairResult]:
        finished = dt.datetime.now(dt.UTC)
        losses = dict.fromkeys(("content", "style", "tv", "photo", "total"), 1.0)
        return [
            PairResult(Status.OK, output_uri=f"out/images/{r.pair_id}.png", iterations_run=10,
                       final_losses=losses, yardstick_total=1.0, wall_s=1.0, batch_size=1,
                       device="cuda", gpu_ids=(0,), node="10.0.0.1", node_id=self.node_id,
                       attempt=attempt, started_at=finished, finished_at=finished)
            for r in rows
        ]  # fmt: skip


def bench_schedule(n: int, workers: int = 4) -> dict[str, float]:
    """The scheduler's own cost for an n-row manifest (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    import workflows.batch.pool as pool
    import workflows.batch.scheduler as scheduler
    from workflows.batch.config import RunConfig
    from workflows.batch.manifest import Manifest
    from workflows.weights import ResolvedWeights

    with tempfile.TemporaryDirectory() as tmp:
        manifest_uri = f"{tmp}/m.parquet"
        pq.write_table(pa.table({"content_uri": ["c.jpg"] * n, "style_uri": ["s.jpg"] * n,
                                 "seed": list(range(n))}), manifest_uri)  # fmt: skip
        ray.init(num_cpus=workers, num_gpus=workers, include_dashboard=False, log_to_driver=False)
        real, pool.PairWorker = pool.PairWorker, NullWorker  # type: ignore[attr-defined,assignment]
        cfg = RunConfig(manifest_uri, f"{tmp}/out", num_workers=workers, quiet=True)
        try:
            with Manifest(manifest_uri, None, None) as manifest:
                weights = ResolvedWeights("vgg19", None, "random")
                cpu, wall, counts = measure(lambda: scheduler.schedule(
                    cfg, manifest.rows(), {}, weights, [], n, (1.0, workers)))  # fmt: skip
        finally:
            pool.PairWorker = real  # type: ignore[attr-defined]
            ray.shutdown()
    assert counts.ok == n, counts
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": n, "workers": workers, "driver_cpu_ms_per_pair": cpu * 1e3 / n,
            "wall_ms_per_pair": wall * 1e3 / n, "peak_rss_mib": rss}  # fmt: skip


def _schedule_in_subprocess(n: int) -> None:
    """bench_schedule in a fresh interpreter, so that its peak RSS is this N's alone."""
    import subprocess

    code = f"from benchmarks.driver_scale import bench_schedule; print(bench_schedule({n}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    print(done.stdout.strip().splitlines()[-1], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--s3", action="store_true", help="on a moto S3 server (tests/s3util)")
    parser.add_argument("--schedule", action="store_true", help="the scheduler's cost per pair")
    args = parser.parse_args(argv)
    if args.schedule:
        for n in args.rows:
            _schedule_in_subprocess(n)
        return 0
    if args.s3:
        sys.path.insert(0, "tests")
        import s3util  # the tests' moto server, fake credentials

        from workflows.storage import filesystem

        with s3util.moto_server():
            for i, n in enumerate(args.rows):
                filesystem("s3://bench")[0].mkdir(f"bench{i}")
                print(bench(f"s3://bench{i}/run", n), flush=True)
        return 0
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            print(bench(tmp, n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
