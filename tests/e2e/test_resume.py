"""Resuming `nst run` into an --output that holds finished pairs: what is skipped, what runs
again, and what is refused (local Ray with fake GPUs; local folder and S3 via moto)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from runutil import ITERATIONS, make_manifest, nst_run, table

from manifests.manifest import parse_row
from manifests.schema import RUN_LOSS_SCHEMA, results_schema
from workflows.analysis import load_run, open_run
from workflows.batch.outputs import consolidate
from workflows.storage import filesystem, read_bytes, write_bytes
from workflows.tables import parquet_bytes


def test_resume_with_other_result_settings_is_refused(ray_s3, tmp_path, examples, weights_path,
                                                      capsys) -> None:  # fmt: skip
    """Finished pairs made with other weights, precision or yardstick size are not mixed into
    one results table: the rerun stops before any work, naming what changed."""
    manifest, weights = make_manifest(str(tmp_path), examples, weights_path)
    out = str(tmp_path / "out")
    assert nst_run(manifest, out, weights, "--limit", "1") == 0
    before = (tmp_path / "out/run.json").read_bytes()
    changes = [
        ("random", (), "--weights sha256:be3200d26788 (this run: random)"),
        (weights, ("--precision", "bf16"), "--precision fp32 (this run: bf16)"),
        (weights, ("--yardstick-size", "64"), "--yardstick-size 256 (this run: 64)"),
    ]
    for given, extra, changed in changes:
        capsys.readouterr()
        assert nst_run(manifest, out, given, "--limit", "1", *extra) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"error: {out} holds 1 finished pairs made with {changed}; resuming would mix both "
            "in one results table: use another --output, or that run's settings"
        )
        assert (tmp_path / "out/run.json").read_bytes() == before
    assert nst_run(manifest, out, weights, "--limit", "1", "--compile", "off") == 0
    assert "skipped 1 pairs already ok" in capsys.readouterr().err


def test_edited_row_under_its_own_pair_id_runs_again(ray_s3, store, examples, weights_path,
                                                     capsys) -> None:  # fmt: skip
    """A done pair whose manifest row changed under the same given pair_id is not skipped: its
    marker records the inputs it was made from."""
    manifest, out = f"{store}/m.parquet", f"{store}/out"
    images = {"content_uri": [str(examples / "content/tubingen.jpg")] * 2,
              "style_uri": [str(examples / "style/wave.jpg")] * 2}  # fmt: skip

    def run_with(style_weight: float) -> tuple[float, str, dict[str, int]]:
        """(the result's style_weight of row "mine", stderr, run.json counts)."""
        rows = pa.table(images | {"pair_id": ["mine", "other"], "image_size": [32, 32],
                                  "iterations": [ITERATIONS] * 2,
                                  "style_weight": [style_weight, 1000.0]})  # fmt: skip
        write_bytes(manifest, parquet_bytes(rows))
        capsys.readouterr()
        assert nst_run(manifest, out, str(weights_path), "--yardstick-size", "0") == 0
        (mine, _) = table(f"{out}/results.parquet")
        counts = json.loads(read_bytes(f"{out}/run.json"))["counts"]
        return mine["style_weight"], capsys.readouterr().err, counts

    run_with(1000.0)
    weight, err, counts = run_with(10.0)
    assert weight == 10.0 and (counts["skipped"], counts["redone"], counts["ok"]) == (1, 1, 1)
    assert "ran 1 pairs again: done under the same pair_id with other URIs or parameters" in err
    weight, err, counts = run_with(10.0)
    assert weight == 10.0 and (counts["skipped"], counts["redone"]) == (2, 0)
    assert "again" not in err
    write_bytes(f"{out}/done/mine", b"")  # an older version's empty marker is trusted
    weight, _, counts = run_with(1.0)
    assert weight == 10.0 and counts["skipped"] == 2


def test_tags_changed_for_a_rerun_label_the_skipped_pairs(ray_s3, tmp_path, examples,
                                                          weights_path, capsys) -> None:  # fmt: skip
    """Tags label rows, they are no inputs: a rerun after adding, changing or dropping tag
    columns skips the done pairs, and the results show the manifest's tags as they are now."""
    manifest, out = tmp_path / "m.parquet", str(tmp_path / "out")
    images: dict[str, list[Any]] = {
        "content_uri": [str(examples / "content/tubingen.jpg")] * 2,
        "style_uri": [str(examples / "style/wave.jpg"), str(examples / "style/starry_night.jpg")],
        "image_size": [32, 32], "iterations": [ITERATIONS] * 2,
    }  # fmt: skip
    tag_sets: list[dict[str, list[Any]]] = [
        {}, {"tag_group": ["x", "y"], "tag_n": [1, 2]}, {"tag_group": ["z", "z"]}
    ]  # fmt: skip
    for tags in tag_sets:
        pq.write_table(pa.table(images | tags), manifest)
        capsys.readouterr()
        assert nst_run(str(manifest), out, str(weights_path), "--yardstick-size", "0") == 0
        results = pq.read_table(f"{out}/results.parquet")
        assert {c: results[c].to_pylist() for c in results.column_names if c[:4] == "tag_"} == tags
    assert "skipped 2 pairs already ok" in capsys.readouterr().err


def test_result_files_of_an_older_version_are_consolidated(tmp_path) -> None:
    """A pair's result file without a column that a later version added (here compile_s and
    batch_size) gives nulls there; its tag comes from the manifest; so does a loss table
    without the loss table's compile_s."""
    row = parse_row(1, {"content_uri": "a.jpg", "style_uri": "b.jpg", "tag_group": "new"})
    tag = pa.field("tag_group", pa.string())
    record = {"pair_id": row.pair_id, "status": "ok", "tag_group": "old", "wall_s": 1.5,
              "compile_s": 2.0, "batch_size": 1}  # fmt: skip
    old = pa.Table.from_pylist([record], schema=results_schema([tag]))
    old = old.drop_columns(["compile_s", "batch_size"])
    (tmp_path / "pairs" / row.pair_id).mkdir(parents=True)
    pq.write_table(old, tmp_path / "pairs" / row.pair_id / "result.parquet")
    losses = {"pair_id": [row.pair_id] * 2, "iteration": [0, 1], "total_loss": [2.0, 1.0],
              "elapsed_s": [0.1, 0.2]}  # fmt: skip
    pq.write_table(pa.table(losses), tmp_path / "pairs" / row.pair_id / "losses.parquet")
    assert consolidate(str(tmp_path), [row], [tag]) == (1, 2)
    (result,) = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert (result["tag_group"], result["wall_s"]) == ("new", 1.5)
    assert result["compile_s"] is None and result["batch_size"] is None
    consolidated = pq.read_table(tmp_path / "losses.parquet")
    assert consolidated.schema.names == RUN_LOSS_SCHEMA.names
    assert consolidated.to_pydict()["total_loss"] == [2.0, 1.0]
    assert consolidated.to_pydict()["compile_s"] == [None, None]


def opened_note(uri: str) -> str | None:
    with open_run(uri) as run:
        return run.note


def test_two_drivers_on_shards_then_one_consolidation(ray_s3, store, examples, weights_path,
                                                      capsys) -> None:  # fmt: skip
    """Two drivers at once, each on its shard of one manifest into one --output: they share no
    row, neither warns about the other nor consolidates; a last run without --shard starts no
    pair and writes results and losses of every row; a shard with other result settings than
    the others' is refused."""
    manifest, out = f"{store}/m.parquet", f"{store}/out"
    n = 5
    write_bytes(manifest, parquet_bytes(pa.table({
        "content_uri": [str(examples / "content/tubingen.jpg")] * n,
        "style_uri": [str(examples / "style/wave.jpg")] * n, "seed": list(range(n)),
        "image_size": [32] * n, "iterations": [ITERATIONS] * n})))  # fmt: skip
    args = ("--yardstick-size", "0")
    codes: dict[int, int] = {}

    def shard(k: int) -> None:
        codes[k] = nst_run(manifest, out, str(weights_path), *args, "--shard", f"{k}/2")

    drivers = [threading.Thread(target=shard, args=(k,)) for k in (1, 2)]
    for t in drivers:
        t.start()
    for t in drivers:
        t.join(timeout=300)
    assert codes == {1: 0, 2: 0}
    check_shards_done_unconsolidated(out, n, capsys.readouterr().err)

    assert nst_run(manifest, out, str(weights_path), *args, "--precision", "bf16",
                   "--shard", "1/2") == 2  # fmt: skip
    assert "made with --precision fp32 (this run: bf16)" in capsys.readouterr().err

    actors = len(ray._private.state.actors())  # every actor this Ray has had, dead or alive
    assert nst_run(manifest, out, str(weights_path), *args) == 0
    err = capsys.readouterr().err
    assert "skipped 5 pairs already ok" in err and "no pair left to run, no worker starts" in err
    assert len(ray._private.state.actors()) == actors  # nothing to run: no worker started
    assert json.loads(read_bytes(f"{out}/run.json"))["counts"]["ok"] == 0
    check_consolidated(out, n)


def check_shards_done_unconsolidated(out: str, n: int, err: str) -> None:
    """Shards 1/2 (3 rows) and 2/2 (2 rows) of n = 5 finished into `out`, neither warning of
    the other: each wrote its own run record and done markers, no results table."""
    assert "WARNING" not in err and "3 of 5 manifest rows (shard 1/2)" in err
    assert "shard 2/2: 2 ok, 0 failed" in err and "without --shard consolidates" in err
    fs, root = filesystem(out)
    assert not fs.exists(f"{root}/results.parquet") and not fs.exists(f"{root}/run.json")
    for k, ok in ((1, 3), (2, 2)):
        record = json.loads(read_bytes(f"{out}/run.shard-{k}-of-2.json"))
        assert record["shard"] == f"{k}/2" and record["status"] == "finished"
        assert record["counts"]["ok"] == ok
    assert len(fs.ls(f"{root}/done")) == n
    going, note = load_run(out)[0], opened_note(out)  # before the last run: the pairs so far
    assert len(going) == n and note == (
        f"run not finished (shard 1/2 finished, shard 2/2 finished): {n} of {n} rows so far"
    )


def check_consolidated(out: str, n: int) -> None:
    """`out`'s results: one ok row per seed 0..n-1; its loss table: each pair's rows, whole."""
    results = table(f"{out}/results.parquet")
    assert [r["seed"] for r in results] == list(range(n))
    assert {r["status"] for r in results} == {"ok"}
    losses = table(f"{out}/losses.parquet")
    assert len(losses) == sum(r["iterations_run"] + 1 for r in results)
    assert {row["pair_id"] for row in losses} == {r["pair_id"] for r in results}
