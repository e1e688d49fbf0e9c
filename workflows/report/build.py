"""The HTML report of a run (`nst report`): index.html + PNG figures, viewable offline.

Summary, loss curves and a table per swept parameter, contact sheets (sampled for large runs),
and a generated statement of which settings reached the lowest yardstick loss.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from manifests.fields import field_specs, format_value
from workflows.analysis import Run, curves, open_run, param_table, summary
from workflows.report.figures import contact_sheet, loss_curves, short

KEY_COLUMNS = ["value", "pairs", "final_total", "yardstick_total", "iters_to_l50", "secs_to_l50"]


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
        "select distinct content_uri, style_uri from results where status = 'ok' order by 1, 2"
    )
    pairs = list(rows.itertuples(index=False, name=None))
    return pairs[:limit], len(pairs)


def _strip(run: Run, pair: tuple[str, str], param: str, path: Path, options: Any) -> None:
    """One image per value of `param` for this (content, style), ordered by the value."""
    rows = run.df(
        f"""select "{param}" as value, output_uri from (
              select *, row_number() over (partition by "{param}" order by pair_id) as k
              from results where status = 'ok' and content_uri = ? and style_uri = ?)
            where k = 1 order by value""",  # noqa: S608
        list(pair),
    )
    labels = [_label(param, v) for v in rows["value"]]
    title = f"{short(pair[0])} x {short(pair[1])}"
    contact_sheet([list(rows["output_uri"])], [title], labels, path, options)


def _grid(run: Run, pair: tuple[str, str], a: str, b: str, path: Path, options: Any) -> None:
    """Rows = values of `a`, columns = values of `b` for this (content, style)."""
    rows = run.df(
        f"""select "{a}" as a, "{b}" as b, min(output_uri) as uri from results
            where status = 'ok' and content_uri = ? and style_uri = ? group by 1, 2""",  # noqa: S608
        list(pair),
    )
    av, bv = sorted(rows["a"].unique()), sorted(rows["b"].unique())
    lookup = {(r.a, r.b): r.uri for r in rows.itertuples()}
    cells = [[lookup.get((x, y)) for y in bv] for x in av]
    row_labels = [f"{short(pair[0])} x {short(pair[1])}: {_label(a, x)}" for x in av]
    contact_sheet(cells, row_labels, [_label(b, y) for y in bv], path, options)


def _statements(run: Run) -> list[str]:
    """The seed talk's style: 'X reduced yardstick style loss by N% vs Y'."""
    out = []
    for param in run.swept:
        table = param_table(run, param).dropna(subset=["yardstick_total"])
        if len(table) < 2:
            continue
        best = table.loc[table["yardstick_total"].idxmin()]
        default = table[[_label(param, v).endswith("(default)") for v in table["value"]]]
        base = default.iloc[0] if len(default) else table.loc[table["yardstick_total"].idxmax()]
        if best["value"] == base["value"]:
            out.append(f"{_label(param, best['value'])} reached the lowest mean yardstick total.")
            continue
        style = 100 * (1 - best["yardstick_style"] / base["yardstick_style"])
        content = 100 * (1 - best["yardstick_content"] / base["yardstick_content"])
        out.append(
            f"{_label(param, best['value'])} reached the lowest mean yardstick total "
            f"({best['yardstick_total']:.4g}); vs {_label(param, base['value'])} it reduced "
            f"yardstick style loss by {style:.1f}% and content loss by {content:.1f}%."
        )
    return out


def _pair_statements(run: Run, pairs: list[tuple[str, str]]) -> list[str]:
    """Per (content, style): the setting with the lowest yardstick total, against the row with
    every swept parameter at its default (else the worst row)."""
    if not run.swept:
        return []
    cols = ", ".join(f'"{p}"' for p in run.swept)
    out = []
    for pair in pairs:
        rows = run.df(
            f"select {cols}, yardstick_total, yardstick_style_loss, yardstick_content_loss "  # noqa: S608
            "from results where status = 'ok' and content_uri = ? and style_uri = ? "
            "and yardstick_total is not null order by yardstick_total",
            list(pair),
        )
        if len(rows) < 2:
            continue
        best = rows.iloc[0]
        defaults = rows[[all(_label(p, r[p]).endswith("(default)") for p in run.swept)
                         for _, r in rows.iterrows()]]  # fmt: skip
        base = defaults.iloc[0] if len(defaults) else rows.iloc[-1]
        setting = ", ".join(_label(p, best[p]) for p in run.swept)
        if base.equals(best):
            out.append(f"{short(pair[0])} x {short(pair[1])}: the defaults ({setting}) won.")
            continue
        style = 100 * (1 - best["yardstick_style_loss"] / base["yardstick_style_loss"])
        total = 100 * (1 - best["yardstick_total"] / base["yardstick_total"])
        versus = ", ".join(_label(p, base[p]) for p in run.swept)
        out.append(
            f"{short(pair[0])} x {short(pair[1])}: {setting} reduced the yardstick total by "
            f"{total:.1f}% and yardstick style loss by {style:.1f}% vs {versus}."
        )
    return out


def build_report(uri: str, out: Path, options: Any = None, max_pairs: int = 12) -> list[str]:
    """Write out/index.html and figures; return the key tables as text lines."""
    run = open_run(uri, options)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>nst-batch report</h1><p>run: <code>{html.escape(uri)}</code></p>"]
    for name, frame in summary(run).items():
        parts.append(f"<h3>{name}</h3>{_table(frame)}")
    text: list[str] = []
    parts.append("<h2>Swept parameters</h2>")
    if not run.swept:
        parts.append("<p>No parameter varies in this run.</p>")
    for i, param in enumerate(run.swept):
        loss_curves(curves(run, param), param, out / f"curves_{i}.png")
        table = param_table(run, param)
        parts.append(f"<h3>{html.escape(param)}</h3><img src='curves_{i}.png'>{_table(table)}")
        text += [f"== {param}", table[KEY_COLUMNS].to_string(index=False)]
    pairs, total = _pairs(run, max_pairs)
    findings = _statements(run) + _pair_statements(run, pairs)
    parts.append("<h2>Findings</h2><ul>")
    parts += [f"<li>{html.escape(s)}</li>" for s in findings] + ["</ul>"]
    text += findings
    parts.append(f"<h2>Contact sheets</h2><p>{len(pairs)} of {total} (content, style) pairs.</p>")
    for j, pair in enumerate(pairs):
        for i, param in enumerate(run.swept):
            _strip(run, pair, param, out / f"sheet_{j}_{i}.png", options)
            parts.append(f"<img src='sheet_{j}_{i}.png'><br>")
        if len(run.swept) == 2:
            first, second = run.swept
            _grid(run, pair, first, second, out / f"grid_{j}.png", options)
            parts.append(f"<img src='grid_{j}.png'><br>")
    style = "body{font-family:sans-serif;margin:2em} td,th{padding:2px 8px} img{max-width:100%}"
    page = "<!doctype html><html><head><meta charset='utf-8'><title>nst-batch report</title>"
    page += f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    (out / "index.html").write_text(page)
    return text
