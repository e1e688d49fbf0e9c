"""`nst run` and `nst report` refuse bad flags and outputs in one line, before Ray starts or
anything is written (the end-to-end runs: tests/e2e/test_run.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runutil import nst_run

from workflows.cli import main
from workflows.storage import write_bytes


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--yardstick-size", "8", "must be 0 (no yardstick) or at least 16, got 8"),
        ("--yardstick-size", "-1", "must be 0 (no yardstick) or at least 16, got -1"),
        ("--max-retries", "-1", "must be at least 0, got -1"),
        ("--pairs-per-gpu", "0", "must be at least 1, got 0"),
        ("--num-workers", "0", "must be at least 1, got 0"),
        ("--gpus-per-task", "-0.5", "must be at least 0, got -0.5"),
        ("--storage-retry-seconds", "nan", "must be at least 0, got nan"),
        ("--connect-timeout-seconds", "0", "must be more than 0, got 0"),
        ("--limit", "x", "invalid int value: 'x'"),
        ("--shard", "3/2", "expected K/N with 1 <= K <= N (e.g. 1/4), got '3/2'"),
        ("--shard", "0/2", "expected K/N with 1 <= K <= N (e.g. 1/4), got '0/2'"),
        ("--shard", "2", "expected K/N with 1 <= K <= N (e.g. 1/4), got '2'"),
    ],
)
def test_run_flags_out_of_range_exit_2_naming_the_flag(
    flag, value, message, tmp_path, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--manifest", "m.parquet", "--output", str(tmp_path / "o"), flag, value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"nst run: error: argument {flag}: {message}"
    assert not (tmp_path / "o").exists()


def test_output_where_a_file_is_is_refused_before_ray_starts(tmp_path, examples, capsys,
                                                             monkeypatch) -> None:  # fmt: skip
    import workflows.batch.job as job

    connects: list[object] = []
    monkeypatch.setattr(job, "connect", lambda *a: connects.append(a))
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"content_uri": [str(examples / "content/tubingen.jpg")],
                             "style_uri": [str(examples / "style/wave.jpg")]}), manifest)  # fmt: skip
    (tmp_path / "file").write_text("a file where the run's folder would go")
    for output, where in [("file", "is a file"), ("file/run", f"{tmp_path}/file is a file")]:
        assert nst_run(manifest, str(tmp_path / output), "random") == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last == f"error: --output {tmp_path}/{output}: {where}; a folder is needed there"
    assert connects == []
    assert (tmp_path / "file").read_text() == "a file where the run's folder would go"


def test_report_of_what_is_not_a_finished_run_is_one_line(store, tmp_path, capsys) -> None:
    report = ["report", "--run", f"{store}/run", "-o", str(tmp_path / "report")]
    assert main(report) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: {store}/run: not a run's --output (no results.parquet and losses.parquet, no "
        "run.json)"
    )
    write_bytes(f"{store}/run/results.parquet", b"not parquet")
    write_bytes(f"{store}/run/losses.parquet", b"not parquet")
    assert main(report) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {store}/run/results.parquet: not a readable Parquet file (")
    assert not (tmp_path / "report").exists()
