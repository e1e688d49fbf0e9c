"""Time to target: how soon each row came within 10%, 5% and 1% of the best loss its objective
reached, and the paired comparison of those times (which settings reach the result fastest).

A row's *objective* is the function its final segment minimises: its content, style and masks
and the StyleParams fields of nst_ops.params.OBJECTIVE_FIELDS (weights, layers, sizes …).
Rows that share one differ only in how they minimise it (optimizer, learning rate, init,
scales, iterations, Luan's stage 1 …), so their totals compare; the *best* of an objective is
the lowest total any of its ok rows reached in its final segment. Level p is then
total ≤ best·(1 + p): a target every row of that objective can be measured against, the same
for all of them — unlike each row's own final value, which every row "reaches" at its end.
With one row per objective (a swept weight or layer set) the best is its own lowest total,
and the times say how fast it converged to its own result, not to a shared one.

Per row: the first loss-table `iteration` of its final segment at which the total was within
the level (rows of earlier segments — coarse scales, stage 1 — minimise other functions but
their iterations count) and its `elapsed_s` there: seconds since the pair's loop started
without compiling (the loss table's `compile_s`), as the batch's clock (with pairs-per-gpu B
the B pairs share those seconds: `batch_size`). Null where the row never got there.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from manifests.schema import URI_COLUMNS
from nst_ops.params import OBJECTIVE_FIELDS
from workflows.analysis import Run, compared, pairs_of, text

LEVELS = (0.10, 0.05, 0.01)
LEVEL = 0.05  # the report's paired comparison


def level_name(level: float) -> str:
    """0.05 → "5pct" (as in the columns iterations_to_5pct, seconds_to_5pct)."""
    return f"{level * 100:g}pct".replace(".", "_")


_SQL = """
with ok as (
    select pair_id, dense_rank() over (order by {key}) as objective, batch_size
    from labelled where status = 'ok'),
last as (
    select pair_id, arg_max(stage, iteration) as stage, arg_max(scale, iteration) as scale
    from losses group by 1),
final as (
    select l.pair_id, l.iteration, l.total_loss, l.elapsed_s
    from losses l join last t on l.pair_id = t.pair_id and l.stage = t.stage
        and l.scale = t.scale
    where isfinite(l.total_loss)),
lowest as (select pair_id, min(total_loss) as lowest_total from final group by 1),
best as (
    select objective, min(lowest_total) as best_total, count(*) as objective_rows
    from ok join lowest using (pair_id) group by 1)
select o.pair_id, o.objective, b.objective_rows, b.best_total, w.lowest_total, {reach},
    o.batch_size
from ok o join lowest w using (pair_id) join best b using (objective)
join final f using (pair_id) group by all order by o.objective, o.pair_id
"""


def time_to_target(run: Run, levels: tuple[float, ...] = LEVELS) -> pd.DataFrame:
    """One row per ok result: `objective` (rows with the same number share one),
    `objective_rows`, its `best_total`, the row's own `lowest_total`, and per level p
    `iterations_to_{p}` / `seconds_to_{p}` (e.g. iterations_to_5pct): the first iteration of
    the final segment with total ≤ best_total·(1 + p), and its elapsed_s (compiling left out);
    null where never reached. `batch_size`: pairs that shared those seconds."""
    columns = {d[0] for d in run.con.execute("select * from labelled limit 0").description}
    fields = [c for c in (*URI_COLUMNS, *OBJECTIVE_FIELDS) if c in columns]
    key = ", ".join(f'"{c}" nulls first' for c in fields)
    reach = []
    for p in levels:
        within = f"f.total_loss <= b.best_total * {1 + p!r}"
        reach.append(f"min(f.iteration) filter (where {within}) as iterations_to_{level_name(p)}")
        reach.append(f"min(f.elapsed_s) filter (where {within}) as seconds_to_{level_name(p)}")
    return run.df(_SQL.format(key=key, reach=", ".join(reach)))


def paired_speed(
    results: pd.DataFrame, targets: pd.DataFrame, param: str, level: float = LEVEL
) -> pd.DataFrame:
    """Per value of `param` and baseline it is compared with (workflows.analysis.compared:
    each pair's own, among rows with the same content, style, masks and other settings): over
    its `pairs`, in how many it
    came within `level` of its objective's best (`reached`; `baseline_reached`), in how many
    it got there in fewer evaluations (`faster`: also where only it got there; `slower`: only
    the baseline did, or in more), and the geometric mean of the per-pair ratios of
    evaluations (iteration + 1) and of seconds where both got there (`iterations_change`,
    `seconds_change`: −0.4 = 40% fewer). `targets`: time_to_target's table."""
    name = level_name(level)
    rows = pairs_of(results, param)
    rows = rows[rows["role"] != "unpaired"].merge(targets, on="pair_id", how="left")
    rows["value"] = rows[param].map(text)
    rows["evaluations"] = rows[f"iterations_to_{name}"].astype("float64") + 1  # NA → NaN
    rows["seconds"] = rows[f"seconds_to_{name}"].astype("float64")
    # repeated rows of one setting: their mean (never reached → NaN, as one of them missing)
    table = rows.groupby(["pair", "value"])[["evaluations", "seconds"]].mean()
    out = []
    for base, value, pairs in compared(rows, param):
        mine = [table.loc[(p, value)] for p in pairs]
        theirs = [table.loc[(p, base)] for p in pairs]
        entry: dict[str, Any] = {"value": value, "baseline": base, "pairs": len(pairs)}
        entry["reached"] = sum(not math.isnan(m["evaluations"]) for m in mine)
        entry["baseline_reached"] = sum(not math.isnan(t["evaluations"]) for t in theirs)
        for column in ("evaluations", "seconds"):
            a = [m[column] for m in mine]
            b = [t[column] for t in theirs]
            label = "iterations" if column == "evaluations" else column
            entry[f"{label}_change"] = _geo_change(a, b)
            entry[f"{label}_faster"] = sum(_faster(x, y) for x, y in zip(a, b, strict=True))
            entry[f"{label}_slower"] = sum(_faster(y, x) for x, y in zip(a, b, strict=True))
        out.append(entry)
    return pd.DataFrame(out)


def _faster(a: float, b: float) -> bool:
    """a got there sooner than b (NaN: never got there)."""
    if math.isnan(a):
        return False
    return math.isnan(b) or a < b


def _geo_change(a: list[float], b: list[float]) -> float:
    """Geometric mean of a/b − 1 over the entries where both are finite and positive."""
    logs = [math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0 and y > 0]
    return math.exp(sum(logs) / len(logs)) - 1 if logs else math.nan
