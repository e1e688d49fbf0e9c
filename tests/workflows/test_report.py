"""Yardstick independence, the report of a tiny two-parameter sweep, and its rendering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from manifests.manifest import parse_row
from workflows.analysis import load_run, open_run
from workflows.cli import main
from workflows.errors import InputError
from workflows.extractors import ExtractorCache
from workflows.report.figures import CELL
from workflows.storage import filesystem, write_bytes
from workflows.weights import resolve_weights


def test_yardstick_is_independent_of_the_rows_params(weights_path: Path, examples: Path) -> None:
    from nst_ops.yardstick import DEFAULTS, yardstick
    from workflows.images import load_image

    cache = ExtractorCache(
        resolve_weights("vgg16", str(weights_path)), __import__("torch").device("cpu")
    )
    content = load_image(str(examples / "content/tubingen.jpg"), 64)
    style = load_image(str(examples / "style/wave.jpg"), 64)
    output = content.flip(-1)  # any image
    values = []
    for layers in (("relu1_1", "relu2_1"), ("relu3_1", "relu4_2", "relu5_2")):
        row = parse_row(1, {"content_uri": "c", "style_uri": "s", "style_layers": list(layers),
                            "pooling": "avg", "style_weight": 7.0})  # fmt: skip
        assert row.params is not None
        cache.get(row.params)  # the row's own trunk is built too: the yardstick must not use it
        values.append(yardstick(cache.get(DEFAULTS), output, content, style, 64))
    assert values[0] == values[1]
    assert values[0].total == pytest.approx(values[0].content_loss + 1000 * values[0].style_loss)


def test_worker_records_yardstick_and_iterations_to_target(ray_cluster, tmp_path: Path,
                                                          weights_path: Path, examples: Path) -> None:  # fmt: skip
    import pyarrow.parquet as pq
    import ray
    from runutil import worker_config

    from workflows.batch.worker import PairWorker

    worker = PairWorker(worker_config(str(tmp_path), cpus_per_task=2, yardstick_size=64))
    weights = [ray.put(resolve_weights("vgg16", str(weights_path)))]
    base = {"content_uri": str(examples / "content/tubingen.jpg"),
            "style_uri": str(examples / "style/wave.jpg"), "image_size": 32, "iterations": 30,
            "optimizer": "adam"}  # fmt: skip
    (first,) = worker.run([parse_row(1, base)], 1, weights)
    assert first.yardstick_total is not None and first.iterations_to_target is None
    assert first.yardstick_size == 32  # the output's own long side, under --yardstick-size 64
    assert first.yardstick_content_loss is not None and first.yardstick_style_loss is not None
    assert first.yardstick_total == pytest.approx(
        first.yardstick_content_loss + 1000 * first.yardstick_style_loss
    )
    losses = pq.read_table(tmp_path / f"pairs/{parse_row(1, base).pair_id}/losses.parquet")
    target = losses.column("total_loss").to_pylist()[5]
    (second,) = worker.run([parse_row(2, base | {"target_loss": target})], 1, weights)
    assert second.iterations_to_target is not None and second.iterations_to_target <= 5
    # a 32 px output is measured at 32 px: --yardstick-size 32 gives the very same yardstick
    at_32 = PairWorker(worker_config(str(tmp_path / "at32"), cpus_per_task=2, yardstick_size=32))
    (same,) = at_32.run([parse_row(1, base)], 1, weights)
    assert (same.yardstick_size, same.yardstick_total) == (32, first.yardstick_total)


def test_yardstick_at_checkpoints_goes_into_the_loss_table(ray_cluster, tmp_path: Path,
                                                           weights_path: Path, examples: Path) -> None:  # fmt: skip
    """--yardstick-every 4 over 10 L-BFGS iterations: the yardstick at rows 4 and 8 (of the
    best image so far) and at the last row (the output's, as in the results); null elsewhere;
    each total = content + 1000 * style."""
    import pyarrow.parquet as pq
    import ray
    from runutil import worker_config

    from workflows.batch.worker import PairWorker

    cfg = worker_config(str(tmp_path), cpus_per_task=2, yardstick_size=32, yardstick_every=4)
    weights = [ray.put(resolve_weights("vgg16", str(weights_path)))]
    row = parse_row(1, {"content_uri": str(examples / "content/tubingen.jpg"),
                        "style_uri": str(examples / "style/wave.jpg"), "image_size": 32,
                        "iterations": 10})  # fmt: skip
    (result,) = PairWorker(cfg).run([row], 1, weights)
    losses = pq.read_table(tmp_path / f"pairs/{row.pair_id}/losses.parquet").to_pylist()
    marked = {r["iteration"]: r for r in losses if r["yardstick_total"] is not None}
    assert sorted(marked) == [4, 8, 10] and len(losses) == 11
    assert marked[10]["yardstick_total"] == result.yardstick_total
    for r in marked.values():
        assert r["yardstick_total"] == pytest.approx(
            r["yardstick_content_loss"] + 1000 * r["yardstick_style_loss"]
        )
    assert marked[4]["yardstick_total"] != marked[8]["yardstick_total"]
    assert all(r["yardstick_content_loss"] is None for r in losses if r["iteration"] not in marked)


def test_yardstick_too_small_for_an_image_fails_its_row_before_optimising(
    ray_cluster, tmp_path: Path, weights_path: Path, examples: Path
) -> None:
    import ray
    from runutil import worker_config

    from workflows.batch.worker import PairWorker

    wide = tmp_path / "wide.png"  # 4:1: 16x4 px at a 16 px yardstick, under relu5_1's 16
    Image.new("RGB", (256, 64), (200, 30, 30)).save(wide)
    worker = PairWorker(worker_config(str(tmp_path / "out"), cpus_per_task=2, yardstick_size=16))
    weights = [ray.put(resolve_weights("vgg16", str(weights_path)))]
    row = parse_row(1, {"content_uri": str(wide), "style_uri": str(examples / "style/wave.jpg"),
                        "image_size": 64, "iterations": 2})  # fmt: skip
    (result,) = worker.run([row], 1, weights)
    assert result.status == "error"
    assert result.error == (
        f"{wide}: 16x4 px at --yardstick-size 16 is too small for layer relu5_1 (short side "
        "must be >= 16 px; raise --yardstick-size, or 0 for no yardstick)"
    )
    assert not (tmp_path / "out" / "images").exists()  # refused before the optimisation


@pytest.fixture(scope="module")
def report(ray_cluster, tmp_path_factory, weights_path: Path, examples: Path) -> Path:
    root: Path = tmp_path_factory.mktemp("report")
    manifest = str(root / "m.parquet")
    sweep = [
        "manifest", "sweep", "--content", str(examples / "content"),
        "--style", str(examples / "style/wave.jpg"), str(examples / "style/the_scream.jpg"),
        "--grid", "style_weight=10,1000,100000", "--grid", "optimizer=lbfgs,adam",
        "--grid", "image_size=32", "--grid", "iterations=3", "-o", manifest,
    ]  # fmt: skip
    assert main(sweep) == 0
    run = [
        "run", "--manifest", manifest, "--output", str(root / "run"), "--model", "vgg16",
        "--weights", str(weights_path), "--quiet", "--yardstick-size", "48",
    ]  # fmt: skip
    assert main(run) == 0
    assert main(["report", "--run", str(root / "run"), "-o", str(root / "report")]) == 0
    return root


def test_report_files_and_grid_shape(report: Path) -> None:
    page = (report / "report" / "index.html").read_text()
    assert "<h3>errors</h3><p>none</p>" in page  # every row ok
    sources = re.findall(r"src='([^']+)'", page)
    assert sources and all((report / "report" / s).exists() for s in sources)
    assert {"curves_0.png", "curves_1.png", "grid_0.png", "grid_1.png"} <= set(sources)
    grid = Image.open(report / "report" / "grid_0.png")
    thumbs = np.asarray(grid.convert("L"))
    assert grid.height >= 3 * CELL  # 3 style_weight rows
    assert grid.width == 2 * round(CELL * 384 / 288)  # 2 optimizer columns of 4:3 thumbnails
    assert thumbs.std() > 10
    assert "style_weight" in page and "optimizer" in page
    # style_weight is a trade-off (a frontier per pair, its strip beside it); optimizer is
    # compared pair by pair against the default
    assert "style_weight trades yardstick content loss against style loss" in page
    assert "optimizer=adam vs optimizer=lbfgs: yardstick style loss lower in" in page
    assert {"frontier_0_0.png", "strip_0_0.png"} <= set(sources)


def test_report_to_an_unwritable_place_is_one_line(report: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("a file where a folder would go")
    command = ["report", "--run", str(report / "run"), "-o", str(tmp_path / "file" / "r")]
    assert main(command) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: -o {tmp_path}/file/r: {tmp_path}/file is a file; a folder is needed there"
    )
    command[-1] = str(tmp_path / "file")
    assert main(command) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: -o {tmp_path}/file: is a file; a folder is needed there"
    )


def test_report_prints_the_summary_then_the_sweeps(report: Path, tmp_path: Path) -> None:
    from workflows.report.build import build_report

    lines = build_report(str(report / "run"), tmp_path / "again")
    assert lines[:2] == ["== status", "status  rows\n    ok    12"]
    headers = [line for line in lines if line.startswith("== ")]
    assert headers == ["== status", "== time", "== slowest", "== style_weight", "== optimizer"]
    pairs, seconds = lines[3].splitlines()[1].split()[1:]
    assert pairs == "12" and float(seconds) > 0


def test_report_refuses_a_negative_max_pairs(report: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            ["report", "--run", str(report / "run"), "-o", str(tmp_path / "r"), "--max-pairs", "-3"]
        )
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "nst report: error: argument --max-pairs: must be at least 0, got -3"
    )


def test_load_run_for_notebooks(report: Path) -> None:
    results, losses = load_run(str(report / "run"))
    assert len(results) == 12 and set(results["status"]) == {"ok"}
    assert results["style_layers"].iloc[0] == "relu1_1+relu2_1+relu3_1+relu4_1+relu5_1"
    assert results["yardstick_total"].notna().all()
    assert set(losses["pair_id"]) == set(results["pair_id"])


def test_a_remote_run_leaves_no_local_copy(report: Path, s3_endpoint: str, tmp_path: Path) -> None:
    """A run on S3 is copied locally to be read (an unfinished one: its results so far), and
    the copy is removed afterwards (by load_run, nst report, and a failed open alike)."""
    import s3util

    s3util.reset(s3_endpoint)
    filesystem("s3://bucket")[0].mkdir("bucket")
    for name in ("results.parquet", "losses.parquet"):
        write_bytes(f"s3://bucket/run/{name}", (report / "run" / name).read_bytes())
    write_bytes("s3://bucket/half/results.parquet", (report / "run/results.parquet").read_bytes())
    before = set(Path(tempfile.gettempdir()).glob("nst-run-*"))
    results, _ = load_run("s3://bucket/run")
    assert len(results) == 12
    assert main(["report", "--run", "s3://bucket/run", "-o", str(tmp_path / "r"),
                 "--max-pairs", "0"]) == 0  # fmt: skip
    assert "style_weight" in (tmp_path / "r/index.html").read_text()
    with open_run("s3://bucket/run") as run:
        assert run.folder.is_dir() and run.swept == ["style_weight", "optimizer"]
    assert not run.folder.exists()
    with pytest.raises(InputError, match=r"half: not a run's --output \(no results.parquet and"):
        open_run("s3://bucket/half")
    for path in sorted((report / "run/pairs").rglob("*.parquet"))[:14]:  # 7 pairs' two files
        write_bytes(f"s3://bucket/going/{path.relative_to(report / 'run')}", path.read_bytes())
    meta = json.loads((report / "run/run.json").read_text()) | {"status": "running"}
    write_bytes("s3://bucket/going/run.json", json.dumps(meta).encode())
    with open_run("s3://bucket/going") as going:  # unfinished: its results so far
        assert going.note == "run not finished (run.json says running): 7 of 12 rows so far"
        assert len(going.df("select * from results")) == 7
    assert set(Path(tempfile.gettempdir()).glob("nst-run-*")) == before


def test_report_of_an_unfinished_run_shows_the_results_so_far(report: Path, tmp_path: Path,
                                                                capsys) -> None:  # fmt: skip
    """A run still running (or interrupted) has no consolidated tables yet: the report builds
    them from the pairs finished so far, says so, and leaves the run's folder as it was."""
    run = tmp_path / "run"
    shutil.copytree(report / "run", run)
    for name in ("results.parquet", "losses.parquet"):
        (run / name).unlink()
    finished = sorted((run / "pairs").iterdir())
    for pair in finished[:5]:  # 5 of 12 not run yet
        shutil.rmtree(pair)
    meta = json.loads((run / "run.json").read_text()) | {"status": "running"}
    (run / "run.json").write_text(json.dumps(meta))
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(["report", "--run", str(run), "-o", str(tmp_path / "r"), "--max-pairs", "1"]) == 0
    note = "run not finished (run.json says running): 7 of 12 rows so far"
    assert capsys.readouterr().out.splitlines()[0] == note
    assert note in (tmp_path / "r/index.html").read_text()
    results, losses = load_run(str(run))
    assert sorted(results["pair_id"]) == [p.name for p in finished[5:]]
    assert set(losses["pair_id"]) == set(results["pair_id"]) and len(losses) == 7 * 4
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    for pair in finished[5:]:
        shutil.rmtree(pair)
    with pytest.raises(
        InputError, match=r"run: no pair has a result yet \(run.json says running\)$"
    ):
        load_run(str(run))


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,1600",
         (report / "report" / "index.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 5 and (pixels < 128).mean() > 0.01  # text and images, not blank
