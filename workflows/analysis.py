"""Reading a run for analysis: `load_run` for notebooks, and the DuckDB queries of `nst report`.

Swept parameters are the StyleParams fields and tag_ columns that take more than one value
among a run's ok results. List-valued parameters are shown as `a+b+c` strings.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from manifests.fields import field_specs
from manifests.schema import TAG_PREFIX
from workflows.storage import StorageOptions, filesystem, join, read_bytes


@dataclass
class Run:
    """Local copies of a run's consolidated tables, opened in DuckDB as `results` and `losses`
    (list params turned into `a+b+c` text so that they group and label)."""

    uri: str
    folder: Path
    con: duckdb.DuckDBPyConnection
    swept: list[str]

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()


def _local_copy(uri: str, options: StorageOptions | None) -> Path:
    fs, path = filesystem(uri, options)
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        return Path(path)
    folder = Path(tempfile.mkdtemp(prefix="nst-run-"))
    for name in ("results.parquet", "losses.parquet"):
        (folder / name).write_bytes(read_bytes(join(uri, name), options))
    return folder


def _quote(path: Path) -> str:
    """A SQL string literal (views cannot take prepared parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def open_run(uri: str, options: StorageOptions | None = None) -> Run:
    folder = _local_copy(uri.rstrip("/"), options)
    con = duckdb.connect()
    lists = [n for n, s in field_specs().items() if s.kind.endswith("_list")]
    raw = con.execute("select * from read_parquet(?) limit 0", [str(folder / "results.parquet")])
    columns = [d[0] for d in raw.description]
    select = ", ".join(
        f"array_to_string({c}, '+') as {c}" if c in lists else f'"{c}"' for c in columns
    )
    con.execute(
        f"create view results as select {select} from read_parquet({_quote(folder / 'results.parquet')})"  # noqa: E501, S608
    )
    con.execute(
        f"create view losses as select * from read_parquet({_quote(folder / 'losses.parquet')})"  # noqa: S608
    )
    candidates = [c for c in columns if c in field_specs() or c.startswith(TAG_PREFIX)]
    swept = [
        c
        for c in candidates
        if con.execute(
            f"select count(distinct \"{c}\") from results where status = 'ok'"  # noqa: S608
        ).fetchone()[0]  # type: ignore[index]
        > 1
    ]
    return Run(uri, folder, con, swept)


def load_run(uri: str, options: StorageOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, losses) of a run as pandas DataFrames, list params as `a+b+c` text."""
    run = open_run(uri, options)
    return run.df("select * from results"), run.df("select * from losses")


def curves(run: Run, param: str) -> pd.DataFrame:
    """Mean total/content/style loss per iteration for each value of `param` (ok rows)."""
    return run.df(
        f"""select r."{param}" as value, l.iteration, avg(l.total_loss) as total,
                   avg(l.content_loss) as content, avg(l.style_loss) as style
            from losses l join results r using (pair_id) where r.status = 'ok'
            group by all order by value, l.iteration"""  # noqa: S608
    )


_LEVELS_SQL = """
with ok as (select * from results where status = 'ok'),
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


def param_table(run: Run, param: str) -> pd.DataFrame:
    """Per value of `param`: final raw total, yardstick terms, and iterations/seconds to reach
    the loss levels L25/L50 — what the best config of each (content, style) reached at 25%/50%
    of its iterations (raw totals: meaningful where the objective is the same)."""
    return run.df(_LEVELS_SQL.format(param=param))


def summary(run: Run) -> dict[str, pd.DataFrame]:
    return {
        "status": run.df("select status, count(*) as rows from results group by 1 order by 1"),
        "time": run.df(
            # a batch's pairs share its wall time: count it once (seconds of the device)
            "select coalesce(device, '-') as device, count(*) as pairs, "
            "sum(wall_s / coalesce(batch_size, 1)) as seconds from results group by 1 order by 1"
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
