"""`nst run` end to end on local Ray with fake GPUs, over a local folder and over S3 (moto)."""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from runutil import ITERATIONS, make_manifest, nst_run, put, table

from manifests.manifest import parse_row
from manifests.schema import RUN_LOSS_SCHEMA, results_schema
from workflows.cli import main
from workflows.storage import read_bytes, write_bytes
from workflows.tables import parquet_bytes


def check_ok_row(r: dict[str, Any], out: str) -> None:
    """An ok result row: one fake GPU, every iteration of every stage, its PNG written."""
    stages = 2 if r["tag_group"] == "photo" else 1
    assert len(r["gpu_ids"]) == 1 and r["gpu_ids"][0] in (0, 1)
    assert r["iterations_run"] == stages * ITERATIONS and r["attempt"] == 1
    assert (r["final_photo_loss"] > 0) == (stages == 2)
    assert r["warnings"] == []
    assert r["output_uri"] == f"{out}/images/{r['pair_id']}.png"
    assert read_bytes(r["output_uri"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert r["final_total_loss"] > 0


def check_first_run_results(results: list[dict[str, Any]], out: str) -> None:
    """results.parquet of the first run over make_manifest's 7 rows: 4 ok rows as
    check_ok_row, 3 errors each naming its own cause."""
    assert len(results) == 7
    by_group = {(r["tag_group"], r["status"]) for r in results}
    assert sum(r["status"] == "ok" for r in results) == 4, [r["error"] for r in results]
    assert ("a", "ok") in by_group
    errors = {r["error"].split(":")[0] if "://" not in r["error"] else r["error"] for r in results
              if r["status"] == "error"}  # fmt: skip
    messages = " | ".join(r["error"] for r in results if r["error"])
    assert "missing.jpg: no such file" in messages
    assert "notes.jpg: not an image file" in messages
    assert "iterations: must be between 1" in messages
    assert len(errors) == 3
    for r in results:
        if r["status"] == "ok":
            check_ok_row(r, out)


def check_first_run_record(meta: dict[str, Any]) -> None:
    """run.json of the first run over make_manifest's 7 rows: 4 ok, 3 failed."""
    assert meta["weights_identity"] == "sha256:be3200d26788"
    assert meta["package_version"] == version("nst-batch")
    assert meta["counts"] == {"ok": 4, "failed": 3, "skipped": 0, "retried": 0, "redone": 0}
    assert meta["cumulative_counts"] == {"ok": 4, "failed": 3, "retried": 0, "redone": 0}
    assert meta["first_started_at"] == meta["started_at"] and meta["invocations"] == 1


def test_run_end_to_end_and_resume(ray_s3, store, examples, weights_path, capsys) -> None:
    manifest, weights = make_manifest(store, examples, weights_path)
    out = f"{store}/out"
    assert nst_run(manifest, out, weights) == 3

    results = table(f"{out}/results.parquet")
    check_first_run_results(results, out)
    losses = table(f"{out}/losses.parquet")
    assert len(losses) == 3 * (ITERATIONS + 1) + (2 * ITERATIONS + 1)
    assert {r["stage"] for r in losses} == {1, 2}
    meta = json.loads(read_bytes(f"{out}/run.json"))
    check_first_run_record(meta)

    # Re-run: the ok pairs are skipped, the failed ones run again; no duplicates anywhere.
    assert nst_run(manifest, out, weights) == 3
    err = capsys.readouterr().err
    assert "skipped 4 pairs already ok" in err and "still running" not in err
    assert (f"7 manifest rows; 2 workers of 1 GPU and 1 CPU (--pairs-per-gpu 1); output {out} "
            "(4 pairs already done in it)") in err  # fmt: skip
    again = table(f"{out}/results.parquet")
    assert sorted(r["pair_id"] for r in again) == sorted(r["pair_id"] for r in results)
    assert len(table(f"{out}/losses.parquet")) == len(losses)
    resumed = json.loads(read_bytes(f"{out}/run.json"))
    assert resumed["counts"] == {"ok": 0, "failed": 3, "skipped": 4, "retried": 0, "redone": 0}
    # the run as a whole: its first start and every invocation's pairs (the 3 bad rows twice)
    assert resumed["cumulative_counts"] == {"ok": 4, "failed": 6, "retried": 0, "redone": 0}
    assert resumed["first_started_at"] == meta["started_at"] < resumed["started_at"]
    assert resumed["invocations"] == 2


def test_tables_match_declared_schemas_and_duckdb_reads_them(ray_s3, tmp_path, examples,
                                                             weights_path) -> None:  # fmt: skip
    manifest, weights = make_manifest(str(tmp_path), examples, weights_path)
    assert nst_run(manifest, str(tmp_path / "out"), weights, "--limit", "2") == 0
    results = pq.read_table(tmp_path / "out/results.parquet")
    tag = pa.field("tag_group", pa.string())
    assert results.schema.equals(results_schema([tag]), check_metadata=False)
    assert pq.read_table(tmp_path / "out/losses.parquet").schema.equals(
        RUN_LOSS_SCHEMA, check_metadata=False
    )
    mean = duckdb.execute(
        f"select tag_group, count(*) n from '{tmp_path}/out/results.parquet' group by 1"
    ).fetchall()
    assert mean == [("a", 2)]


def test_model_loaded_once_per_worker(ray_s3, examples, weights_path) -> None:
    from runutil import worker_config

    from workflows.batch.worker import PairWorker
    from workflows.weights import resolve_weights

    weights = ray.put(resolve_weights("vgg16", str(weights_path)))
    cfg = worker_config("/tmp/nst-test-worker")
    actor: Any = ray.remote(PairWorker).options(num_gpus=1, num_cpus=1).remote(cfg)
    values = {
        "content_uri": str(examples / "content/tubingen.jpg"),
        "style_uri": str(examples / "style/wave.jpg"),
        "image_size": 32,
        "iterations": 1,
    }
    for seed in range(3):
        row = parse_row(seed + 1, values | {"seed": seed})
        (result,) = ray.get(actor.run.remote([row], 1, [weights]))
        assert result.status == "ok", result.error
    info = ray.get(actor.info.remote())
    assert info["builds"] == 1 and len(info["gpu_ids"]) == 1
    ray.kill(actor)


def test_an_unexpected_error_is_recorded_in_run_json(ray_s3, tmp_path, examples, weights_path,
                                                     monkeypatch) -> None:  # fmt: skip
    """A bug (here a failing consolidation) still ends the run with a traceback, and run.json
    says failed with the error instead of running forever."""
    import workflows.batch.job as job

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(job, "consolidate", broken)
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"content_uri": [str(examples / "content/tubingen.jpg")],
                             "style_uri": [str(examples / "style/wave.jpg")],
                             "image_size": [32], "iterations": [1]}), manifest)  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        nst_run(manifest, str(tmp_path / "out"), str(weights_path), "--yardstick-size", "0")
    meta = json.loads((tmp_path / "out/run.json").read_text())
    assert (meta["status"], meta["error"]) == ("failed", "RuntimeError: boom")


def test_weights_of_the_other_model_fail_the_run_in_run_json(
    ray_s3, tmp_path, examples, weights_path, capsys
) -> None:
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"content_uri": [str(examples / "content/tubingen.jpg")],
                             "style_uri": [str(examples / "style/wave.jpg")]}), manifest)  # fmt: skip
    out = tmp_path / "out"
    args = ["run", "--manifest", manifest, "--output", str(out), "--model", "vgg19",
            "--weights", str(weights_path), "--quiet"]  # fmt: skip
    assert main(args) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: --weights ") and "is not a vgg19 parameter" in message
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == message.removeprefix("error: ")
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no pair ran


def test_a_remote_manifest_leaves_no_local_copy(ray_s3, store, examples, weights_path,
                                               capsys) -> None:  # fmt: skip
    """nst run and nst manifest validate copy a remote manifest locally to stream it, and
    remove the copy afterwards; so does a manifest refused on open."""
    manifest, weights = make_manifest(store, examples, weights_path)
    write_bytes(f"{store}/text.parquet", b"not parquet")
    before = set(Path(tempfile.gettempdir()).glob("nst-manifest-*"))
    assert nst_run(manifest, f"{store}/out", weights, "--limit", "1") == 0
    assert main(["manifest", "validate", manifest]) == 1  # its row 4 has iterations 0
    assert nst_run(f"{store}/text.parquet", f"{store}/out2", weights) == 1
    assert "not a readable Parquet file" in capsys.readouterr().err
    assert set(Path(tempfile.gettempdir()).glob("nst-manifest-*")) == before


def test_bad_manifest_is_fatal_before_any_work(ray_s3, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"content_uri": ["a"], "bogus": [1]}), bad)
    assert nst_run(str(bad), str(tmp_path / "out"), "random") == 1
    err = capsys.readouterr().err
    assert "missing required column 'style_uri'" in err and "unknown column 'bogus'" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "text.parquet").write_text("hello")
    assert nst_run(str(tmp_path / "text.parquet"), str(tmp_path / "out"), "random") == 1
    assert "not a readable Parquet file" in capsys.readouterr().err


def test_pairs_per_gpu_batches_compatible_rows(ray_s3, tmp_path, examples, weights_path) -> None:
    content, wave = str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg")
    starry = str(examples / "style/starry_night.jpg")
    common = {"content_uri": content, "image_size": 32, "iterations": 4}
    rows = [
        common | {"style_uri": wave},
        common | {"style_uri": starry, "style_weight": 1e4, "seed": 2, "init": "random"},
        common | {"style_uri": str(tmp_path / "missing.jpg")},  # fails alone; the rest go on
        common | {"style_uri": wave, "content_weight": 3.0},
        common | {"style_uri": wave, "iterations": 3},  # another batch_key: its own batch
        common | {"style_uri": starry, "optimizer": "adam"},
    ]
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({k: [r.get(k) for r in rows] for r in rows for k in r}), manifest)
    weights = str(weights_path)
    assert nst_run(manifest, str(tmp_path / "one"), weights) == 3
    assert nst_run(manifest, str(tmp_path / "four"), weights, "--pairs-per-gpu", "4") == 3
    one, four = (
        pq.read_table(tmp_path / d / "results.parquet").to_pylist() for d in ("one", "four")
    )
    assert [r["batch_size"] for r in four] == [3, 3, None, 3, 1, 1]
    assert [r["batch_size"] for r in one] == [1, 1, None, 1, 1, 1]
    assert [r["status"] for r in four] == ["ok", "ok", "error", "ok", "ok", "ok"]
    assert "missing.jpg: no such file" in four[2]["error"]
    losses = {d: duckdb.execute(f"select pair_id, iteration, total_loss, style_loss from "
                            f"'{tmp_path}/{d}/losses.parquet' order by 1, 2").fetchall()
              for d in ("one", "four")}  # fmt: skip
    assert len(losses["one"]) == len(losses["four"]) == 4 * 5 + 4
    for a, b in zip(losses["one"], losses["four"], strict=True):
        assert a[:2] == b[:2] and a[2:] == pytest.approx(b[2:], rel=1e-4)
    # the report's device seconds count a batch's shared wall time once
    from workflows.analysis import open_run
    from workflows.report.queries import summary

    seconds = summary(open_run(str(tmp_path / "four")))["time"]["seconds"].sum()
    shared = sum(r["wall_s"] / (r["batch_size"] or 1) for r in four)
    assert seconds == pytest.approx(shared) and seconds < sum(r["wall_s"] for r in four)


def check_auto_mask_files(ok: dict[str, Any], out: str) -> dict[str, set[int]]:
    """The two auto masks of an ok row: PNGs beside its image, every pixel one palette colour,
    the content mask the image's size → the palette indices each mask uses."""
    import io

    from PIL import Image

    from nst_ops.masks import decode_mask
    from workflows.images import to_tensor

    image = Image.open(io.BytesIO(read_bytes(ok["output_uri"])))
    colours = {}
    for column, uri in (("content", ok["auto_content_mask_uri"]),
                        ("style", ok["auto_style_mask_uri"])):  # fmt: skip
        assert uri == f"{out}/images/{ok['pair_id']}.{column}_mask.png"
        mask = Image.open(io.BytesIO(read_bytes(uri))).convert("RGB")
        decoded = decode_mask(to_tensor(mask))
        assert bool((decoded.sum(0) == 1).all())  # every pixel one palette colour
        colours[column] = set(decoded.flatten(1).sum(1).nonzero().flatten().tolist())
        if column == "content":
            assert mask.size == image.size
    return colours


def test_auto_masks_are_computed_used_and_written_beside_the_image(ray_s3, store, examples,
                                                                   weights_path) -> None:  # fmt: skip
    photo = examples / "photo"
    content = put(photo / "content.jpg", f"{store}/in/photo.jpg")
    style = put(photo / "style.jpg", f"{store}/in/photo_style.jpg")
    auto = {"content_uri": content, "style_uri": style, "content_mask_uri": "auto",
            "style_mask_uri": "auto", "image_size": 48, "iterations": ITERATIONS}  # fmt: skip
    rows = [auto | {"mask_regions": 2, "photo_weight": 1e4}, auto | {"mask_regions": 12},
            auto | {"style_mask_uri": str(photo / "style_seg.png")}]  # fmt: skip
    manifest = f"{store}/manifest.parquet"
    columns = {k: [r.get(k) for r in rows] for r in rows for k in r}
    write_bytes(manifest, parquet_bytes(pa.table(columns)))
    weights = put(weights_path, f"{store}/weights/vgg16.pth")
    out = f"{store}/out"
    assert nst_run(manifest, out, weights) == 3  # rows that failed: exit 3
    ok, regions, one_sided = table(f"{out}/results.parquet")
    assert ok["status"] == "ok", ok["error"]
    assert regions["error"] == "mask_regions: must be between 2 and 9, got 12"
    assert one_sided["error"] == "content_mask_uri: 'auto' needs style_mask_uri 'auto' too"
    assert ok["content_mask_uri"] == "auto" and ok["auto_mask_s"] > 0
    colours = check_auto_mask_files(ok, out)
    # 2 content regions, 3 style regions (the first 3 palette colours); each content region
    # has the colour of the style region it takes
    assert colours["content"] <= colours["style"] <= {0, 1, 2} and len(colours["style"]) >= 2
    assert regions["auto_content_mask_uri"] is None
