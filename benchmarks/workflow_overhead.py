"""Workflow overhead of `nst run` on local Ray: tiny pairs (16 px, 1 iteration, shallow layers,
yardstick off) so that the time is the workflow's — manifest streaming, scheduling, image
decoding, writing four objects per pair, consolidation. Reports per-pair overhead and the
driver's peak RSS for each manifest size (goal: <= 50 ms/pair, RSS flat from 1k to 10k rows).

    python benchmarks/workflow_overhead.py --rows 1000 10000
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import REPO


def make_manifest(path: Path, rows: int) -> None:
    examples = REPO / "examples"
    pq.write_table(pa.table({
        "content_uri": [str(examples / "content/tubingen.jpg")] * rows,
        "style_uri": [str(examples / "style/wave.jpg")] * rows,
        "seed": list(range(rows)), "init": ["random"] * rows,
        "image_size": [16] * rows, "iterations": [1] * rows,
        "content_layers": [["relu2_1"]] * rows, "style_layers": [["relu1_1", "relu2_1"]] * rows,
    }), path)  # fmt: skip


def run(rows: int, workers: int) -> tuple[float, float, float]:
    """(total seconds, seconds per pair after Ray start, driver peak RSS MiB) in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "m.parquet"
        make_manifest(manifest, rows)
        code = (
            "import resource, sys, time\n"
            "import ray\n"
            "from workflows.cli import main\n"
            f"ray.init(num_cpus={workers}, include_dashboard=False, log_to_driver=False)\n"
            "t = time.perf_counter()\n"
            f"rc = main(['run', '--manifest', {str(manifest)!r}, '--output', {tmp!r} + '/out',"
            " '--weights', 'random', '--quiet', '--yardstick-size', '0', '--gpus-per-task', '0'])\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            "sys.exit(rc)\n"
        )
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        total = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        seconds, rss_kib = out.stdout.strip().splitlines()[-1].split()
        return total, float(seconds) / rows, float(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{'rows':>6} {'total s':>8} {'ms/pair':>8} {'driver peak RSS MiB':>20}")
    for rows in args.rows:
        total, per_pair, rss = run(rows, args.workers)
        print(f"{rows:6d} {total:8.1f} {per_pair * 1000:8.1f} {rss:20.0f}")
    _ = resource  # documented: RSS is ru_maxrss of the driver process


if __name__ == "__main__":
    main()
