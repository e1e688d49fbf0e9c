"""`nst run` on a cluster of several nodes (ray.cluster_utils.Cluster: raylets of their own on
this machine, fake GPUs): a GPU node lost mid-run without grace, as a preempted VM — its
workers, their queued pairs and half-written outputs gone — and a new node joining."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workflows.tables import parquet_bytes

pytestmark = pytest.mark.slow
NST = str(Path(sys.executable).parent / "nst")
PAIRS = 24


@pytest.fixture
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    # a head that runs no pair (no GPU) and two GPU nodes of 2 fake GPUs
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()  # type: ignore[no-untyped-call]


def manifest(folder: Path, examples: Path, pairs: int = PAIRS, iterations: int = 40) -> Path:
    """Tiny pairs of one GPU each (distinct style weights: distinct pair ids)."""
    rows = {
        "content_uri": [str(examples / "content/tubingen.jpg")] * pairs,
        "style_uri": [str(examples / "style/wave.jpg")] * pairs,
        "style_weight": [10.0 + i for i in range(pairs)],
        "image_size": [32] * pairs,
        "iterations": [iterations] * pairs,
    }
    path = folder / f"manifest-{pairs}.parquet"
    path.write_bytes(parquet_bytes(pa.table(rows)))
    return path


def nodes_done(output: Path) -> list[str | None]:
    """The node_id of each pair finished so far (its result file)."""
    found = []
    for path in output.glob("pairs/*/result.parquet"):
        try:
            found.append(pq.read_table(path).column("node_id")[0].as_py())
        except (OSError, pa.ArrowInvalid):  # being written
            pass
    return found


def check_lost_node_run(output: Path, log: str, lost: str, alive: set[str]) -> None:
    """Every one of the PAIRS rows has one ok result, on the lost node or an `alive` one; the
    lost node's unfinished pairs were retried elsewhere (attempt 2) and the summary counts them;
    every loss table is whole (iterations_run + 1 rows, none twice)."""
    results = pq.read_table(output / "results.parquet").to_pylist()
    assert len(results) == PAIRS and len({r["pair_id"] for r in results}) == PAIRS
    assert {r["status"] for r in results} == {"ok"}
    assert {r["node_id"] for r in results} <= alive | {lost}
    retried = [r for r in results if r["attempt"] > 1]
    assert retried and all(r["attempt"] == 2 and r["node_id"] != lost for r in retried)
    assert all(r["attempt"] == 1 for r in results if r["node_id"] == lost)
    assert f"{PAIRS} ok, 0 failed, 0 skipped (already ok), {len(retried)} retried" in log
    losses = pq.read_table(output / "losses.parquet").to_pylist()
    rows = Counter((r["pair_id"], r["iteration"]) for r in losses)
    assert max(rows.values()) == 1  # no row twice
    per_pair = Counter(r["pair_id"] for r in losses)
    assert all(per_pair[r["pair_id"]] == r["iterations_run"] + 1 for r in results)
    assert len(list(output.glob("done/*"))) == PAIRS


def test_a_lost_node_loses_no_pair_and_a_new_node_gets_work(
    cluster: Any, tmp_path: Path, examples: Path, weights_path: Path
) -> None:
    """Node B is removed without grace once it has finished a pair and others are queued on
    it; node D joins. Every row has exactly one result, all ok; B's unfinished pairs finished
    elsewhere on a second attempt; every loss table is whole (iterations_run + 1 rows, none
    twice); the run exits 0. (D may or may not start its workers before C has done the rest:
    timing.) Then, C gone too, a second run: D, the node that joined, runs every pair."""
    b, c = cluster.worker_nodes
    output = tmp_path / "out"

    def command(manifest_path: Path, out: Path, *extra: str) -> list[str]:
        return [NST, "run", "--manifest", str(manifest_path), "--output", str(out), "--address",
                cluster.address, "--model", "vgg16", "--weights", str(weights_path), "--quiet",
                *extra]  # fmt: skip

    run = subprocess.Popen(command(manifest(tmp_path, examples), output),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while b.node_id not in nodes_done(output) or len(nodes_done(output)) < 4:
        assert run.poll() is None and time.monotonic() < deadline, "run ended before B did work"
        time.sleep(0.2)
    cluster.remove_node(b, allow_graceful=False)  # its raylet and workers are killed
    d = cluster.add_node(num_cpus=2, num_gpus=2)
    log, _ = run.communicate(timeout=600)
    assert run.returncode == 0, log[-3000:]

    check_lost_node_run(output, log, lost=b.node_id, alive={c.node_id, d.node_id})

    second = tmp_path / "second"
    small = manifest(tmp_path, examples, pairs=8, iterations=5)
    again = subprocess.run(command(small, second, "--num-workers", "4"), capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    nodes = Counter(r["node_id"] for r in pq.read_table(second / "results.parquet").to_pylist())
    assert (
        set(nodes) <= {c.node_id, d.node_id} and nodes[d.node_id] > 0 and sum(nodes.values()) == 8
    )
