"""The DuckDB queries of `nst report` over an opened run (workflows.analysis.open_run): loss
curves normalised per pair and the summary tables (time to target: workflows.targets)."""

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
