"""The driver's own cost of resuming and consolidating a large run (issue 35, part of "one
driver's limit"): N finished pairs are written as `nst run`'s workers write them (result row,
an 11-row loss table, done marker), then the driver's two whole-run steps are timed — the
resume scan (listing done/ and reading every marker: workflows.batch.outputs.done_ids and
done_inputs) and consolidation (results.parquet + losses.parquet) — with process CPU time,
wall time and peak RSS, on the local filesystem or the moto S3 server. Scheduling's own cost
per pair is not measured here (benchmarks/workflow_overhead.py measures the whole loop).

    python -m benchmarks.driver_scale --rows 10000 100000 [--s3]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--s3", action="store_true", help="on a moto S3 server (tests/s3util)")
    args = parser.parse_args(argv)
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
