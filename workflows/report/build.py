"""The HTML report of a run (`nst report`): index.html + PNG figures, viewable offline.

Summary and time to target per row (workflows.targets); per swept parameter, loss curves
normalised per pair and paired comparisons — for a loss weight (α, β, …) a frontier plot per
pair beside its strip of images, otherwise the paired effects on the yardstick —, and the
paired time to within 5% of the objective's best; findings as sentences
(workflows.report.findings); contact sheets (sampled for large runs).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from manifests.fields import field_specs, format_value
from workflows.analysis import (
    WEIGHT_PARAMS,
    Run,
    frontier,
    open_run,
    order,
    paired_effects,
    pairs_of,
)
from workflows.analysis import text as text_of
from workflows.report.figures import contact_sheet, frontier_plot, loss_curves, short
from workflows.report.findings import param_findings, speed_findings
from workflows.report.queries import curves, summary
from workflows.targets import LEVEL, paired_speed, time_to_target

SPEED_COLUMNS = [
    "value", "baseline", "pairs", "reached", "baseline_reached", "iterations_change",
    "iterations_faster", "seconds_change", "seconds_faster",
]  # fmt: skip
TARGET_ROWS = 60  # a run with more rows gets the per-row table in time_to_target(run) only


def _default(param: str) -> str | None:
    spec = field_specs().get(param)
    return None if spec is None else format_value(spec.default, "+")


def _label(param: str, value: Any) -> str:
    text = format_value(value, "+") if not isinstance(value, str) else value
    return f"{param}={text}" + (" (default)" if text == _default(param) else "")


def _table(frame: pd.DataFrame) -> str:
    return str(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0))


def _pairs(run: Run, limit: int) -> tuple[list[tuple[str, str]], int]:
    rows = run.df(
        "select distinct content_uri, style_uri from labelled where status = 'ok' order by 1, 2"
    )
    pairs = list(rows.itertuples(index=False, name=None))
    return pairs[:limit], len(pairs)


def _strip(run: Run, pair: tuple[str, str], param: str, path: Path, options: Any) -> None:
    """One image per value of `param` for this (content, style), ordered by the value."""
    rows = run.df(
        f"""select "{param}" as value, output_uri from (
              select *, row_number() over (partition by "{param}" order by pair_id) as k
              from labelled where status = 'ok' and content_uri = ? and style_uri = ?)
            where k = 1 order by value""",  # noqa: S608
        list(pair),
    )
    labels = [_label(param, v) for v in rows["value"]]
    title = f"{short(pair[0])} x {short(pair[1])}"
    contact_sheet([list(rows["output_uri"])], [title], labels, path, options)


def _grid(run: Run, pair: tuple[str, str], a: str, b: str, path: Path, options: Any) -> None:
    """Rows = values of `a`, columns = values of `b` for this (content, style)."""
    rows = run.df(
        f"""select "{a}" as a, "{b}" as b, min(output_uri) as uri from labelled
            where status = 'ok' and content_uri = ? and style_uri = ? group by 1, 2""",  # noqa: S608
        list(pair),
    )
    av, bv = sorted(rows["a"].unique()), sorted(rows["b"].unique())
    lookup = {(r.a, r.b): r.uri for r in rows.itertuples()}
    cells = [[lookup.get((x, y)) for y in bv] for x in av]
    row_labels = [f"{short(pair[0])} x {short(pair[1])}: {_label(a, x)}" for x in av]
    contact_sheet(cells, row_labels, [_label(b, y) for y in bv], path, options)


def _frontiers(
    rows: pd.DataFrame, i: int, param: str, others: list[str], out: Path, limit: int,
    options: Any,
) -> list[str]:  # fmt: skip
    """Per pair (at most `limit`; `rows`: pairs_of): the frontier plot and, beside it, the strip
    of its images ordered by the value, as HTML; first a table of how often each value is on
    its pair's frontier."""
    points = frontier(rows, param)
    parts = []
    for k, (pair, group) in enumerate(points.groupby("pair", sort=True)):
        if k == limit:
            parts.append(f"<p>{limit} of {points['pair'].nunique()} pairs shown.</p>")
            break
        mine = rows[rows["pair"] == pair].drop_duplicates(subset=[param])
        first = mine.iloc[0]
        title = ", ".join(
            [f"{short(first['content_uri'])} x {short(first['style_uri'])}"]
            + [_label(o, first[o]) for o in others]
        )  # the pair's other settings
        frontier_plot(group, param, title, out / f"frontier_{i}_{k}.png")
        ordered = sorted(mine.itertuples(), key=lambda r: order(text_of(getattr(r, param))))
        labels = [_label(param, getattr(r, param)) for r in ordered]
        strip = out / f"strip_{i}_{k}.png"
        contact_sheet([[r.output_uri for r in ordered]], [title], labels, strip, options)
        parts.append(
            f"<div class='side'><img src='frontier_{i}_{k}.png'><img src='strip_{i}_{k}.png'></div>"
        )
    counts = points.groupby("value").agg(
        pairs=("pair", "nunique"), on_frontier=("on_frontier", "sum")
    )
    counts = counts.reset_index().sort_values("value", key=lambda v: v.map(order))
    return [f"<p>On the yardstick frontier of their pair:</p>{_table(counts)}", *parts]


def _section(
    run: Run, results: pd.DataFrame, targets: pd.DataFrame, i: int, param: str, out: Path,
    limit: int, options: Any,
) -> tuple[str, list[str]]:  # fmt: skip
    """One swept parameter: normalised loss curves, the paired comparison (a frontier for a
    loss weight), the paired time to target; (HTML, text lines)."""
    rows = pairs_of(results, param)
    html_parts, text = [f"<h3>{html.escape(param)}</h3>"], [f"== {param}"]
    if (rows["role"] == "unpaired").all():
        html_parts.append("<p>No two values share their other settings: nothing to compare.</p>")
        return "".join(html_parts), text
    loss_curves(curves(run, param, rows), param, out / f"curves_{i}.png")
    html_parts.append(f"<img src='curves_{i}.png'>")
    if param in WEIGHT_PARAMS:
        others = [p for p in run.swept if p != param]
        html_parts += _frontiers(rows, i, param, others, out, limit, options)
    else:
        effects = paired_effects(results, param)
        bases = sorted(set(effects["baseline"])) if len(effects) else []
        own = "each pair's baseline (the default where the pair has it, else its first value)"
        base = html.escape(f"{param}={bases[0]}") if len(bases) == 1 else own
        html_parts.append(f"<p>Against {base} in the same pair:</p>{_table(effects)}")
        text.append(effects.to_string(index=False))
    speed = paired_speed(results, targets, param)
    if len(speed):
        html_parts.append(
            f"<p>Time to within {LEVEL:.0%} of its objective's best, against the baseline in "
            f"the same pair (*_change: geometric mean of the per-pair ratios − 1 where both got "
            f"there; *_faster: pairs where this value got there sooner):</p>{_table(speed)}"
        )
        text.append(speed[SPEED_COLUMNS].to_string(index=False))
    return "".join(html_parts), text


def build_report(uri: str, out: Path, options: Any = None, max_pairs: int = 12) -> list[str]:
    """Write out/index.html and figures; return the key tables as text lines."""
    with open_run(uri, options) as run:
        return _build(run, uri, out, options, max_pairs)


# The figures a report writes: an earlier report's into the same folder are removed first, so
# that no figure of another run or sweep is left beside index.html. Other files are kept.
_FIGURE = re.compile(r"(curves|frontier|strip|sheet|grid)(_\d+){1,2}\.png")


def _fresh_folder(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if _FIGURE.fullmatch(path.name) and path.is_file():
            path.unlink()


def _build(run: Run, uri: str, out: Path, options: Any, max_pairs: int) -> list[str]:
    results, targets = run.df("select * from labelled"), time_to_target(run)
    _fresh_folder(out)
    parts = [f"<h1>nst-batch report</h1><p>run: <code>{html.escape(uri)}</code></p>"]
    text: list[str] = []
    if run.note:  # an unfinished run: what has a result so far
        parts.append(f"<p><b>{html.escape(run.note)}</b></p>")
        text.append(run.note)
    for name, frame in summary(run).items():
        parts.append(f"<h3>{name}</h3>{'<p>none</p>' if frame.empty else _table(frame)}")
        if not frame.empty:
            text += [f"== {name}", frame.to_string(index=False)]
    parts.append(_targets_part(targets))
    parts.append("<h2>Swept parameters</h2><p>Every comparison is paired: a value against the "
                 "baseline (the default, else the first value) among rows with the same "
                 "content, style, masks and other settings; loss curves are each pair's curve "
                 "divided by its baseline's final value, then averaged.</p>")  # fmt: skip
    if not run.swept:
        parts.append("<p>No parameter varies within an image pair in this run.</p>")
    if run.between:
        line = f"Differ only between image pairs, so not compared: {', '.join(run.between)}."
        parts.append(f"<p>{html.escape(line)}</p>")
        text.append(line)
    findings: list[str] = []
    for i, param in enumerate(run.swept):
        section, lines = _section(run, results, targets, i, param, out, max_pairs, options)
        parts.append(section)
        text += lines
        findings += param_findings(results, param) + speed_findings(results, targets, param)
    parts.append("<h2>Findings</h2><ul>")
    parts += [f"<li>{html.escape(s)}</li>" for s in findings] + ["</ul>"]
    text += findings
    parts += _contact_sheets(run, out, max_pairs, options)
    (out / "index.html").write_text(_page(parts))
    return text


def _targets_part(targets: pd.DataFrame) -> str:
    """The per-row time-to-target table (workflows.targets), or where it is in a large run."""
    head = (
        "<h3>time to target</h3><p>Per row: the first iteration and seconds (compiling left "
        "out; a batch's pairs share its seconds) at which its total came within 10%, 5%, 1% of "
        "the best any row of the same objective (content, style, masks, weights, layers, "
        "sizes) reached; rows with the same <code>objective</code> number share one.</p>"
    )
    if len(targets) > TARGET_ROWS:
        return head + f"<p>{len(targets)} rows: see workflows.targets.time_to_target(run).</p>"
    return head + _table(targets)


def _contact_sheets(run: Run, out: Path, max_pairs: int, options: Any) -> list[str]:
    """The contact sheets' section: per (content, style) pair, a strip per swept parameter
    (weights have theirs beside the frontier) and, with two swept, their grid."""
    pairs, total = _pairs(run, max_pairs)
    parts = [f"<h2>Contact sheets</h2><p>{len(pairs)} of {total} (content, style) pairs.</p>"]
    for j, pair in enumerate(pairs):
        for i, param in enumerate(run.swept):
            if param in WEIGHT_PARAMS:
                continue  # beside its frontier above
            _strip(run, pair, param, out / f"sheet_{j}_{i}.png", options)
            parts.append(f"<img src='sheet_{j}_{i}.png'><br>")
        if len(run.swept) == 2:
            first, second = run.swept
            _grid(run, pair, first, second, out / f"grid_{j}.png", options)
            parts.append(f"<img src='grid_{j}.png'><br>")
    return parts


def _page(parts: list[str]) -> str:
    """The HTML page around the report's parts."""
    style = (
        "body{font-family:sans-serif;margin:2em} td,th{padding:2px 8px} img{max-width:100%}"
        " .side{display:flex;gap:1em;align-items:flex-start} .side img{max-width:49%}"
    )
    page = "<!doctype html><html><head><meta charset='utf-8'><title>nst-batch report</title>"
    return page + f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
