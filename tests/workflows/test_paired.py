"""Paired analysis on synthetic results tables (no optimisation): findings follow per-pair
ratios, unpaired rows are left out and counted, a trade-off parameter gets a frontier and no
winner, and the report names the frontier figure it writes."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from manifests.schema import RUN_LOSS_SCHEMA, results_schema
from workflows.analysis import frontier, open_run, paired_effects, pairs_of
from workflows.report.build import build_report
from workflows.report.findings import param_findings, percent

SL45 = "relu1_1+relu2_1+relu3_1+relu4_2+relu5_2"
DEFAULT_LAYERS = "relu1_1+relu2_1+relu3_1+relu4_1+relu5_1"


def row(content: str, style: str, scale: float, layers: str = DEFAULT_LAYERS,
        style_weight: float = 1000.0, content_loss: float = 1.0, style_loss: float = 1.0,
        raw: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """A results row (the columns analysis reads); yardstick values scaled by `scale`."""
    c, s = scale * content_loss, scale * style_loss
    return {
        "pair_id": f"p{abs(hash((content, style, layers, style_weight, scale))) % 10**12}",
        "status": "ok", "content_uri": content, "style_uri": style,
        "content_mask_uri": None, "style_mask_uri": None,
        "style_layers": layers, "style_weight": style_weight, "image_size": 128,
        "yardstick_content_loss": c, "yardstick_style_loss": s,
        "yardstick_total": c + 1000 * s, "final_total_loss": scale * raw,
    }  # fmt: skip


def layer_sweep() -> pd.DataFrame:
    """Two pairs whose yardsticks differ 1000×: SL4,5 lowers style 10% in the small pair and
    raises it 5% in the big one — unpaired means would follow the big pair."""
    rows = [
        row("a.jpg", "s.jpg", 1.0),
        row("a.jpg", "s.jpg", 1.0, SL45, style_loss=0.9, raw=0.8),
        row("b.jpg", "s.jpg", 1000.0),
        row("b.jpg", "s.jpg", 1000.0, SL45, style_loss=1.05),
        row("c.jpg", "s.jpg", 5.0, SL45),  # no default-layers partner: unpaired
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("function", [paired_effects, frontier, pairs_of])
def test_a_name_that_is_no_parameter_of_the_run_is_named(function: Any) -> None:
    with pytest.raises(ValueError, match=r"^'stylelayers' is not a parameter of this run; its "
                       r"parameters: style_layers, style_weight, image_size$"):  # fmt: skip
        function(layer_sweep(), "stylelayers")


def test_paired_effects_follow_per_pair_ratios_not_the_big_pair() -> None:
    effects = paired_effects(layer_sweep(), "style_layers")
    (sl45,) = effects.itertuples()
    assert sl45.value == SL45 and sl45.baseline == DEFAULT_LAYERS
    assert sl45.pairs == 2 and sl45.unpaired == 1
    assert sl45.style_change == pytest.approx(math.sqrt(0.9 * 1.05) - 1)  # geometric mean
    assert sl45.style_better == 1 and sl45.content_better == 0
    assert sl45.raw_total_change == pytest.approx(math.sqrt(0.8 * 1.0) - 1)
    # the unpaired mean over both pairs would call it a 4.99% increase: the big pair wins
    unpaired_mean = (0.9 + 1000 * 1.05) / (1 + 1000) - 1
    assert unpaired_mean > 0.04 and sl45.style_change < 0


def test_findings_say_in_how_many_pairs_and_by_how_much() -> None:
    text = " ".join(param_findings(layer_sweep(), "style_layers"))
    change = percent(math.sqrt(0.9 * 1.05) - 1)
    assert f"yardstick style loss lower in 1 of 2 pairs (geometric mean {change})" in text
    assert change.endswith("lower") and "-" not in change  # never "reduced by -5%"
    assert f"raw final total {percent(math.sqrt(0.8) - 1)}" in text
    assert "1 row (style_layers relu1_1+relu2_1+relu3_1+relu4_2+relu5_2) without" in text
    assert percent(0.051) == "5.1% higher" and percent(-0.042) == "4.2% lower"
    # total: lower in the small pair only (1 of 2): no winner by the paired total
    assert "no value lowered the paired yardstick total of" in text and "in most pairs" in text


def weight_sweep() -> pd.DataFrame:
    """β = 100 keeps content, β = 10000 matches style: each wins one term, in two pairs."""
    rows = []
    for content, scale in (("a.jpg", 1.0), ("b.jpg", 1000.0)):
        rows.append(row(content, "s.jpg", scale, style_weight=100.0, content_loss=1, style_loss=3))
        rows.append(row(content, "s.jpg", scale, style_weight=1e4, content_loss=3, style_loss=1))
        rows.append(row(content, "s.jpg", scale, style_weight=1e3, content_loss=4, style_loss=4))
    return pd.DataFrame(rows)


def test_a_weight_sweep_is_a_frontier_without_a_winner() -> None:
    points = frontier(weight_sweep(), "style_weight")
    on = points[points["on_frontier"]].groupby("value")["pair"].nunique().to_dict()
    assert on == {"100": 2, "10000": 2}  # 1000 is dominated in both pairs
    sentence = " ".join(param_findings(weight_sweep(), "style_weight"))
    assert "no single best value" in sentence and "best by" not in sentence
    assert "on the frontier 100 (in 2 of 2 pairs), 10000 (in 2 of 2 pairs)" in sentence
    assert "dominated 1000 (in 2 of 2)" in sentence


def test_pairs_need_equal_other_settings() -> None:
    frame = layer_sweep()
    frame.loc[1, "image_size"] = 256  # now a's SL4,5 row differs in another setting
    roles = pairs_of(frame, "style_layers")["role"].tolist()
    assert roles == ["unpaired", "unpaired", "baseline", "value", "unpaired"]


def write_run(folder: Path, frame: pd.DataFrame) -> None:
    """results.parquet (the declared schema), losses.parquet (3 rows a pair), grey images."""
    folder.mkdir(parents=True)
    (folder / "images").mkdir()
    schema = results_schema()
    records = []
    for r in frame.to_dict("records"):
        uri = str(folder / "images" / f"{r['pair_id']}.png")
        Image.new("RGB", (32, 24), (120, 120, 120)).save(uri)
        r = r | {"style_layers": r["style_layers"].split("+"), "output_uri": uri}
        records.append({name: r.get(name) for name in schema.names})
    pq.write_table(pa.Table.from_pylist(records, schema=schema), folder / "results.parquet")
    losses = [{"pair_id": r["pair_id"], "iteration": i, "total_loss": r["final_total_loss"] * (3 - i),
               "content_loss": 1.0 + i, "style_loss": 3.0 - i, "tv_loss": 0.0, "photo_loss": 0.0,
               "stage": 1, "scale": 128, "style_layer_losses": [], "elapsed_s": 0.1 * i}
              for r in records for i in range(3)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(losses, schema=RUN_LOSS_SCHEMA), folder / "losses.parquet")


def test_report_shows_the_frontier_beside_its_strip(tmp_path: Path) -> None:
    write_run(tmp_path / "run", weight_sweep())
    lines = build_report(str(tmp_path / "run"), tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert "frontier_0_0.png" in sources and "frontier_0_1.png" in sources
    assert all((tmp_path / "report" / s).exists() for s in sources)
    side = re.search(r"<div class='side'><img src='frontier_0_0.png'><img src='(\w+).png'>", page)
    assert side is not None and side.group(1) == "strip_0_0"
    assert any("no single best value" in line for line in lines)
    assert "reduced" not in page and "lowest mean" not in page


def test_what_differs_only_between_image_pairs_is_not_swept(tmp_path: Path) -> None:
    """A photo pair beside a style_weight sweep: its photo_weight and image_size differ from the
    others' but never within one image pair, so there is nothing to compare; they are named
    once (they used to get sections of 'unpaired' rows)."""
    photo = row("p.jpg", "q.jpg", 2.0) | {"photo_weight": 1e4, "image_size": 64}
    write_run(tmp_path / "run", pd.concat([weight_sweep(), pd.DataFrame([photo])]))
    with open_run(str(tmp_path / "run")) as run:
        assert (run.swept, run.between) == (["style_weight"], ["image_size", "photo_weight"])
    lines = build_report(str(tmp_path / "run"), tmp_path / "report")
    line = "Differ only between image pairs, so not compared: image_size, photo_weight."
    assert line in lines and line in (tmp_path / "report" / "index.html").read_text()
    assert not [x for x in lines if x.startswith(("== photo_weight", "photo_weight:"))]


@pytest.mark.parametrize(("spread", "scale"), [(1.01, "linear"), (100.0, "log")])
def test_frontier_axes_label_every_tick_apart(spread: float, scale: str) -> None:
    """Values within a decade get a linear axis (log ticks labelled to 3 digits repeated
    '1.86e+05'); values over decades a log one. Either way no two tick labels are equal."""
    from workflows.report.figures import frontier_figure

    points = pd.DataFrame({"value": [100, 1000, 10000], "on_frontier": [True, True, True],
                           "yardstick_content_loss": [1.05e7, 1.05e7 * spread, 1.06e7 * spread],
                           "yardstick_style_loss": [1.87e5, 1.86e5, 1.87e5 / spread]})  # fmt: skip
    fig = frontier_figure(points, "style_weight", "a x s")
    ax = fig.axes[0]
    fig.canvas.draw()
    assert (ax.get_xscale(), ax.get_yscale()) == (scale, scale)
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        shown = [t.get_text() for t in labels if t.get_text()]
        assert len(shown) >= 2 and len(set(shown)) == len(shown), shown


def test_a_report_into_an_earlier_reports_folder_leaves_no_stale_figure(tmp_path: Path) -> None:
    write_run(tmp_path / "run", weight_sweep())
    out = tmp_path / "report"
    out.mkdir()
    for name in ("frontier_9_9.png", "sheet_7_1.png", "notes.txt", "my_1.png"):
        (out / name).write_bytes(b"earlier")
    build_report(str(tmp_path / "run"), out)
    names = {p.name for p in out.iterdir()}
    assert {"notes.txt", "my_1.png", "frontier_0_0.png"} <= names  # the user's files are kept
    assert not {"frontier_9_9.png", "sheet_7_1.png"} & names


def test_open_run_keeps_lists_as_lists_and_labels_them(tmp_path: Path) -> None:
    """`results` is the table as written (a list query works on it as on the file), and
    `labelled` has list params as a+b+c (what load_run returns)."""
    write_run(tmp_path / "run", layer_sweep())
    with open_run(str(tmp_path / "run")) as run:
        sql = "select array_to_string(style_layers, '+') as layers, count(*) from {} group by 1 order by 1"
        on_file = f"read_parquet('{tmp_path / 'run' / 'results.parquet'}')"
        assert run.con.execute(sql.format("results")).fetchall() == [(DEFAULT_LAYERS, 2), (SL45, 3)]
        assert run.con.execute(sql.format(on_file)).fetchall() == [(DEFAULT_LAYERS, 2), (SL45, 3)]
        first = run.con.execute("select style_layers[1] from results limit 1").fetchone()
        assert first == ("relu1_1",)
        labels = run.con.execute("select distinct style_layers from labelled order by 1").fetchall()
        assert labels == [(DEFAULT_LAYERS,), (SL45,)]


def test_each_pair_is_compared_with_its_own_baseline() -> None:
    """A painting pair swept over style_weight 100 and 10000 beside a photo pair at the default
    1000 (issue 36): the painting pair is compared against its own first value, 100, not left
    out because the run's default is elsewhere; the photo row alone is unpaired. The same for
    a non-weight parameter: each pair's baseline among its own values."""
    frame = pd.DataFrame([
        row("c.jpg", "s.jpg", 1.0, style_weight=100.0, style_loss=2.0),
        row("c.jpg", "s.jpg", 1.0, style_weight=10000.0, style_loss=0.5, content_loss=2.0),
        row("p.jpg", "q.jpg", 5.0),
    ])  # fmt: skip
    rows = pairs_of(frame, "style_weight")
    assert rows["role"].tolist() == ["baseline", "value", "unpaired"]
    points = frontier(frame, "style_weight")
    assert sorted(points["value"]) == ["100", "10000"] and points["on_frontier"].all()
    sentences = " ".join(param_findings(frame, "style_weight"))
    assert "no pair has two" not in sentences
    assert "on the frontier 100 (in 1 of 1 pairs)" in sentences
    assert "1 row (style_weight 1000)" in sentences

    layers = pd.DataFrame([
        row("a.jpg", "s.jpg", 1.0),  # a: the default layers and SL45
        row("a.jpg", "s.jpg", 1.0, SL45, style_loss=0.8),
        row("b.jpg", "s.jpg", 100.0, SL45),  # b: no default row; its baseline is its first
        row("b.jpg", "s.jpg", 100.0, "relu1_1", style_loss=1.1),  # value in order: relu1_1
    ])  # fmt: skip
    effects = paired_effects(layers, "style_layers")
    got = {(r.baseline, r.value): (r.pairs, round(r.style_change, 4)) for r in effects.itertuples()}
    assert got == {(DEFAULT_LAYERS, SL45): (1, -0.2), ("relu1_1", SL45): (1, -0.0909)}
    sentences = " ".join(param_findings(layers, "style_layers"))
    assert f"style_layers={SL45} vs style_layers={DEFAULT_LAYERS}" in sentences
    assert f"style_layers={SL45} vs style_layers=relu1_1" in sentences
    assert "the baseline is each pair's own" in sentences
