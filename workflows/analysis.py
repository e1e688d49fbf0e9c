"""Reading a run for analysis: `load_run` for notebooks, `open_run` (DuckDB views), and the
paired comparisons (`paired_effects`, `frontier`); `nst report`'s own queries over an opened
run are in workflows.report.queries.

Swept parameters are the StyleParams fields and tag_ columns that take more than one value
among the ok results of one image pair (same content, style and masks); one that differs only
between image pairs (e.g. photo_weight between a photo pair and artistic ones) is listed in
`between`, not compared. List-valued parameters are shown as `a+b+c` strings.

Comparisons are paired: a value of a swept parameter is compared with its pair's baseline value
only within a *pair* — rows with the same content, style, masks and every other parameter and
tag — because yardstick values differ by orders of magnitude between images; per-pair ratios
are then combined with their geometric mean. The baseline is chosen per pair, among the values
that pair has: the default where it has it, else its first value (so a pair swept over values
that exclude the default is compared too, against its own first one).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from manifests.fields import field_specs, format_value
from manifests.schema import TAG_PREFIX, URI_COLUMNS
from workflows.batch.outputs import tables_so_far
from workflows.errors import InputError
from workflows.storage import StorageOptions, filesystem, join, read_bytes

TABLES = ("results.parquet", "losses.parquet")  # what `nst run` consolidates when it ends
NOT_A_RUN = "{uri}: not a run's --output (no results.parquet and losses.parquet, no run.json)"


@dataclass
class Run:
    """Local copies of a run's consolidated tables, opened in DuckDB as the views `results`
    and `losses` (the tables as written: list columns are lists) and `labelled` (`results`
    with list params as `a+b+c` text, so that they group and label: what load_run returns)."""

    uri: str
    folder: Path
    con: duckdb.DuckDBPyConnection
    swept: list[str]
    temporary: bool = False  # `folder` is a temporary copy (remote or so far): close() removes it
    note: str | None = None  # e.g. that the run has not finished: the tables are what is so far
    # parameters that differ between image pairs only (never within one): nothing to compare
    between: list[str] = field(default_factory=list)

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def close(self) -> None:
        self.con.close()
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _local_copy(uri: str, options: StorageOptions | None) -> tuple[Path, bool, str | None]:
    """(the folder holding the run's TABLES, whether it is a temporary copy, a note): the run's
    own when local, else a temporary copy; for a run that has not finished, its results so far
    and a note saying so. InputError naming the run when it is none."""
    fs, path = filesystem(uri, options)
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        if all((Path(path) / name).is_file() for name in TABLES):
            return Path(path), False, None
        return _unfinished(uri, options)
    folder = Path(tempfile.mkdtemp(prefix="nst-run-"))
    try:
        for name in TABLES:
            try:
                (folder / name).write_bytes(read_bytes(join(uri, name), options))
            except InputError as e:
                if not str(e).endswith(": no such file"):
                    raise
                shutil.rmtree(folder, ignore_errors=True)
                return _unfinished(uri, options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, True, None


def _unfinished(uri: str, options: StorageOptions | None) -> tuple[Path, bool, str]:
    """A temporary folder with the results so far of a run that has not finished (it has a
    run.json but no consolidated tables yet), and the note saying so."""
    folder = Path(tempfile.mkdtemp(prefix="nst-run-"))
    try:
        return folder, True, tables_so_far(uri, str(folder), options)
    except BaseException as e:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, InputError) and str(e).endswith("run.json: no such file"):
            raise InputError(NOT_A_RUN.format(uri=uri)) from None
        raise


def _quote(path: Path) -> str:
    """A SQL string literal (views cannot take prepared parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, folder: Path, uri: str) -> dict[str, list[str]]:
    """The column names of each of the run's TABLES; InputError naming an unreadable one."""
    columns = {}
    for name in TABLES:
        try:
            raw = con.execute("select * from read_parquet(?) limit 0", [str(folder / name)])
        except duckdb.Error as e:
            first = str(e).splitlines()[0]
            raise InputError(f"{join(uri, name)}: not a readable Parquet file ({first})") from None
        columns[name] = [d[0] for d in raw.description]
    return columns


def open_run(uri: str, options: StorageOptions | None = None) -> Run:
    """The run's tables as DuckDB views `results`, `losses` and `labelled` (see Run);
    close() it (or use `with`) to remove the local copy of a remote or unfinished run."""
    folder, temporary, note = _local_copy(uri.rstrip("/"), options)
    try:
        return _open(uri, folder, temporary, note)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _open(uri: str, folder: Path, temporary: bool, note: str | None) -> Run:
    con = duckdb.connect()
    lists = [n for n, s in field_specs().items() if s.kind.endswith("_list")]
    columns = _columns(con, folder, uri.rstrip("/"))["results.parquet"]
    select = ", ".join(
        f"array_to_string({c}, '+') as {c}" if c in lists else f'"{c}"' for c in columns
    )
    source = f"read_parquet({_quote(folder / 'results.parquet')})"
    con.execute(f"create view results as select * from {source}")  # noqa: S608
    con.execute(f"create view labelled as select {select} from {source}")  # noqa: S608
    con.execute(
        f"create view losses as select * from read_parquet({_quote(folder / 'losses.parquet')})"  # noqa: S608
    )
    candidates = [c for c in columns if c in field_specs() or c.startswith(TAG_PREFIX)]
    varied = {c: _most_values(con, c) for c in candidates}
    swept = [c for c, (within, _) in varied.items() if within > 1]
    between = [c for c, (within, overall) in varied.items() if within <= 1 < overall]
    return Run(uri, folder, con, swept, temporary, note, between)


def _most_values(con: duckdb.DuckDBPyConnection, column: str) -> tuple[int, int]:
    """(the most distinct values `column` takes among the ok rows of one image pair — same
    content, style and masks —, the distinct values among all ok rows)."""
    images = ", ".join(URI_COLUMNS)
    within, overall = con.execute(
        f"select max(n), (select count(distinct \"{column}\") from labelled where status = 'ok') "  # noqa: S608
        f"from (select count(distinct \"{column}\") n from labelled where status = 'ok' "
        f"group by {images})"
    ).fetchone()  # type: ignore[misc]
    return int(within or 0), int(overall or 0)


def load_run(uri: str, options: StorageOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, losses) of a run as pandas DataFrames, list params as `a+b+c` text."""
    with open_run(uri, options) as run:
        return run.df("select * from labelled"), run.df("select * from losses")


# Loss weights: sweeping one trades content against style (a frontier, no single winner).
WEIGHT_PARAMS = (
    "content_weight",
    "style_weight",
    "tv_weight",
    "photo_weight",
    "style_layer_weights",
)
METRICS = {
    "content": "yardstick_content_loss",
    "style": "yardstick_style_loss",
    "total": "yardstick_total",
    "raw_total": "final_total_loss",  # the row's own objective: comparable only where equal
}


def text(value: Any) -> str:
    """A parameter value as the report labels it (lists as a+b+c)."""
    return value if isinstance(value, str) else format_value(value, "+")


def order(value: str) -> tuple[int, float, str]:
    """Sort key of value labels: numbers by value, then the rest by text."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def baseline(param: str, values: list[Any]) -> Any:
    """The value others are compared with: the default when it was swept, else the first."""
    spec = field_specs().get(param)
    default = None if spec is None else format_value(spec.default, "+")
    for value in values:
        if text(value) == default:
            return value
    return sorted(values, key=lambda v: (v is None, text(v) if isinstance(v, str) else v))[0]


def pairs_of(results: pd.DataFrame, param: str) -> pd.DataFrame:
    """The ok rows with `pair`: a label of their setting except `param` (equal labels = the
    same content, style, masks, other parameters and tags), and `role`: "baseline", "value"
    (it has its pair's baseline), or "unpaired" (its pair has no row of another value).
    ValueError naming the parameters a run has when `param` is not one of its columns."""
    if param not in results.columns:
        known = [c for c in results.columns if c in field_specs() or c.startswith(TAG_PREFIX)]
        raise ValueError(f"{param!r} is not a parameter of this run; its parameters: "
                         f"{', '.join(known)}")  # fmt: skip
    ok = results[results["status"] == "ok"].copy()
    setup = [c for c in ok.columns if c != param and (
        c in URI_COLUMNS or c in field_specs() or c.startswith(TAG_PREFIX))]  # fmt: skip
    ok["pair"] = [repr(key) for key in ok[setup].itertuples(index=False, name=None)]
    bases = {pair: text(baseline(param, list(values.drop_duplicates())))
             for pair, values in ok.groupby("pair", sort=False)[param]}  # fmt: skip
    ok["pair_baseline"] = ok["pair"].map(bases)
    labels = ok[param].map(text)
    is_base = labels == ok["pair_baseline"]
    several = labels.groupby(ok["pair"]).transform("nunique") > 1
    ok["role"] = "unpaired"
    ok.loc[is_base & several, "role"] = "baseline"
    ok.loc[~is_base, "role"] = "value"  # its pair has its baseline: chosen among its values
    return ok


def compared(rows: pd.DataFrame, param: str) -> list[tuple[str, str, list[str]]]:
    """(baseline, value, pairs) for each value of `param` and each baseline it is compared
    with (pairs_of's rows): values in order, then baselines."""
    valued = rows[rows["role"] == "value"]
    found: dict[tuple[str, str], set[str]] = {}
    for pair, base, value in zip(valued["pair"], valued["pair_baseline"],
                                 valued[param].map(text), strict=True):  # fmt: skip
        found.setdefault((base, value), set()).add(pair)
    keys = sorted(found, key=lambda k: (order(k[1]), order(k[0])))
    return [(base, value, sorted(found[(base, value)])) for base, value in keys]


def paired_effects(results: pd.DataFrame, param: str) -> pd.DataFrame:
    """Per value of `param` and baseline it is compared with (`compared`; per pair, see the
    module docstring): in how many pairs it lowered each metric
    (`{metric}_better`, of `pairs`) and the geometric mean of its per-pair ratios as a change
    (`{metric}_change`: −0.042 = 4.2% lower). Metrics: the yardstick's content, style and
    total, and the raw final total. `unpaired`: rows of that value left out (no baseline with
    the same other settings). `results` as `load_run` returns it."""
    rows = pairs_of(results, param)
    columns = list(METRICS.values())
    labels = rows[param].map(text)
    table = rows[rows["role"] != "unpaired"].groupby(["pair", labels])[columns].mean()
    lone = labels[rows["role"] == "unpaired"].value_counts()
    out = []
    for base, value, paired in compared(rows, param):
        entry: dict[str, Any] = {"value": value, "baseline": base}
        entry["unpaired"] = int(lone.get(value, 0))
        entry["pairs"] = len(paired)
        for name, column in METRICS.items():
            ratios = [table.loc[(p, value), column] / table.loc[(p, base), column]
                      for p in paired]  # fmt: skip
            good = [r for r in ratios if math.isfinite(r) and r > 0]
            geo = math.exp(sum(math.log(r) for r in good) / len(good)) if good else math.nan
            entry[f"{name}_change"] = geo - 1
            entry[f"{name}_better"] = sum(r < 1 for r in good)
        out.append(entry)
    return pd.DataFrame(out)


def frontier(results: pd.DataFrame, param: str) -> pd.DataFrame:
    """Per pair, each value's yardstick content and style loss and whether it is on the pair's
    Pareto frontier (no other value of the pair has both lower or equal, one lower): the view
    of a trade-off parameter such as α or β, which has no single best value."""
    rows = pairs_of(results, param)
    rows = rows[rows["role"] != "unpaired"].dropna(subset=[METRICS["content"], METRICS["style"]])
    keep = ["pair", "content_uri", "style_uri", param, METRICS["content"], METRICS["style"]]
    rows = rows[keep].rename(columns={param: "value"})
    rows["value"] = rows["value"].map(text)
    rows = rows.groupby(["pair", "content_uri", "style_uri", "value"], as_index=False).mean()
    c, st = rows[METRICS["content"]], rows[METRICS["style"]]
    on = []
    for i in rows.index:
        same = rows["pair"] == rows.at[i, "pair"]
        no_worse = same & (c <= c[i]) & (st <= st[i])
        on.append(not (no_worse & ((c < c[i]) | (st < st[i]))).any())
    rows["on_frontier"] = on
    return rows
