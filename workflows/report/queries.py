"""The DuckDB queries of `nst report` over an opened run (workflows.analysis.open_run): loss
curves normalised per pair, the L25/L50 table over paired rows, and the summary tables."""

from __future__ import annotations

import pandas as pd

from workflows.analysis import Run, text


def curves(run: Run, param: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Loss curves per value of `param`, normalised per pair: each pair's total/content/style
    curve divided by its baseline row's final value, then averaged over the pairs (`rows`:
    pairs_of's paired rows). 1.0 = where the baseline ended."""
    paired = rows.loc[rows["role"] != "unpaired", ["pair_id", "pair", "role", param]].copy()
    paired["value"] = paired.pop(param).map(text)
    run.con.register("paired", paired)
    return run.df(
        """with last as (select pair_id, max(iteration) as n from losses group by 1),
           base as (select p.pair, avg(l.total_loss) as t, avg(l.content_loss) as c,
                           avg(l.style_loss) as s
                    from paired p join last using (pair_id)
                    join losses l on l.pair_id = p.pair_id and l.iteration = last.n
                    where p.role = 'baseline' group by 1)
           select p.value, l.iteration, avg(l.total_loss / nullif(b.t, 0)) as total,
                  avg(l.content_loss / nullif(b.c, 0)) as content,
                  avg(l.style_loss / nullif(b.s, 0)) as style, count(*) as pairs
           from paired p join losses l using (pair_id) join base b using (pair)
           group by all order by 1, 2"""
    )


_LEVELS_SQL = """
with ok as (select r.* from results r join paired p using (pair_id)),
ranked as (
    select *, row_number() over (partition by content_uri, style_uri
        order by coalesce(yardstick_total, final_total_loss), pair_id) as rk from ok),
best as (select content_uri, style_uri, pair_id as best_id, iterations_run as n from ranked
         where rk = 1),
levels as (
    select b.content_uri, b.style_uri,
        max(case when l.iteration = b.n // 4 then l.total_loss end) as l25,
        max(case when l.iteration = b.n // 2 then l.total_loss end) as l50
    from best b join losses l on l.pair_id = b.best_id group by all),
reach as (
    select o.pair_id,
        min(case when l.total_loss <= v.l25 then l.iteration end) as it25,
        min(case when l.total_loss <= v.l25 then l.elapsed_s end) as s25,
        min(case when l.total_loss <= v.l50 then l.iteration end) as it50,
        min(case when l.total_loss <= v.l50 then l.elapsed_s end) as s50
    from ok o join levels v using (content_uri, style_uri)
    join losses l on l.pair_id = o.pair_id group by all)
select o."{param}" as value, count(*) as pairs,
    avg(o.final_total_loss) as final_total, avg(o.yardstick_content_loss) as yardstick_content,
    avg(o.yardstick_style_loss) as yardstick_style, avg(o.yardstick_total) as yardstick_total,
    avg(r.it25) as iters_to_l25, avg(r.s25) as secs_to_l25, count(r.it25) as reached_l25,
    avg(r.it50) as iters_to_l50, avg(r.s50) as secs_to_l50, count(r.it50) as reached_l50
from ok o join reach r using (pair_id) group by all order by value
"""


def param_table(run: Run, param: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Per value of `param`, over its paired rows only (`rows`: pairs_of): mean final raw
    total, yardstick terms, and iterations/seconds to reach the loss levels L25/L50 — what
    the best config of each (content, style) reached at 25%/50% of its iterations, computed
    per pair (raw totals: meaningful where the objective is the same)."""
    run.con.register("paired", rows.loc[rows["role"] != "unpaired", ["pair_id"]])
    return run.df(_LEVELS_SQL.format(param=param))


def summary(run: Run) -> dict[str, pd.DataFrame]:
    return {
        "status": run.df("select status, count(*) as rows from results group by 1 order by 1"),
        "time": run.df(
            # a batch's pairs share its wall time: count it once (seconds of the device)
            "select coalesce(device, '-') as device, count(*) as pairs, "
            "coalesce(sum(wall_s / coalesce(batch_size, 1)), 0) as seconds from results "
            "group by 1 order by 1"
        ),
        "slowest": run.df(
            "select pair_id, wall_s, image_size, iterations_run from results "
            "where status = 'ok' order by wall_s desc limit 5"
        ),
        "errors": run.df(
            "select error, count(*) as rows from results where status <> 'ok' "
            "group by 1 order by 2 desc limit 20"
        ),
    }
