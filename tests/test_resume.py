"""Resuming `nst run` into an --output that holds finished pairs: what is skipped, what runs
again, and what is refused (local Ray with fake GPUs; local folder and S3 via moto)."""

from __future__ import annotations

import json

import pyarrow as pa
from runutil import ITERATIONS, make_manifest, nst_run, table

from workflows.storage import read_bytes, write_bytes
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
