"""Parquet schemas of the manifest, the results table and the loss table — declared once here and
imported by every reader, writer and test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from functools import cache
from typing import Any

import pyarrow as pa

from manifests.fields import field_specs
from manifests.results import PairResult, Status
from nst_ops.objective import TERM_NAMES

TAG_PREFIX = "tag_"
YARDSTICK_TERMS = ("content_loss", "style_loss", "total")  # nst_ops.yardstick.Yardstick's
PAIR_ID_PATTERN = r"[A-Za-z0-9._-]{1,128}"

# Per-iteration loss table (one row per evaluation; see nst_ops.recorder). `pair_id` is present
# in a run's losses.parquet and per-pair loss files, absent from `nst stylize`'s table. One
# `{name}_loss` column per term of nst_ops.objective.LOSS_TERMS, in order. `elapsed_s` leaves
# out the time spent compiling, which `compile_s` holds (so far in the pair's run).
LOSS_FIELDS = [
    pa.field("iteration", pa.int64(), nullable=False),
    *(pa.field(f"{name}_loss", pa.float64()) for name in TERM_NAMES),
    pa.field("stage", pa.int64()),
    pa.field("scale", pa.int64()),
    pa.field("style_layer_losses", pa.map_(pa.string(), pa.float64())),
    pa.field("elapsed_s", pa.float64()),
    pa.field("compile_s", pa.float64()),
    # nst run --yardstick-every N: at rows N, 2N, … and the last; null elsewhere
    *(pa.field(f"yardstick_{name}", pa.float64()) for name in YARDSTICK_TERMS),
]
LOSS_SCHEMA = pa.schema(LOSS_FIELDS)
RUN_LOSS_SCHEMA = pa.schema([pa.field("pair_id", pa.string(), nullable=False), *LOSS_FIELDS])

URI_COLUMNS = ("content_uri", "style_uri", "content_mask_uri", "style_mask_uri")
MASK_COLUMNS = ("content_mask_uri", "style_mask_uri")
# A mask URI of this value: the worker computes both masks (nst_ops.automask), both or neither
AUTO_MASK = "auto"
REQUIRED_COLUMNS = ("content_uri", "style_uri")


@cache
def manifest_schema() -> pa.Schema:
    """Every column a manifest may have (besides tag_* columns, carried through untouched)."""
    fields = [pa.field("pair_id", pa.string())]
    fields += [pa.field(name, pa.string()) for name in URI_COLUMNS]
    fields += [pa.field(s.name, s.arrow_type) for s in field_specs().values()]
    return pa.schema(fields)


_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    Status: pa.string(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
    tuple[str, ...]: pa.list_(pa.string()),
    tuple[int, ...]: pa.list_(pa.int64()),
}


@cache
def outcome_fields() -> tuple[pa.Field, ...]:
    """The results columns of a PairResult (manifests.results), in its field order; `status`
    and `error` included (results_schema puts them first)."""
    hints = typing.get_type_hints(PairResult)
    out = []
    for f in dataclasses.fields(PairResult):
        if f.name == "final_losses":
            out += [pa.field(f"final_{name}_loss", pa.float64()) for name in TERM_NAMES]
            continue
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        kind = args[0] if args else hints[f.name]
        out.append(pa.field(f.name, _ARROW_TYPES[kind], nullable=f.name != "status"))
    return tuple(out)


def results_schema(tag_fields: list[pa.Field] | None = None) -> pa.Schema:
    """Results table: pair_id, status (ok | error | diverged), error, URIs, every StyleParams
    field, the tag_ columns, then the rest of PairResult's outcome columns."""
    outcome = {f.name: f for f in outcome_fields()}
    fields = [pa.field("pair_id", pa.string(), nullable=False), outcome.pop("status")]
    fields.append(outcome.pop("error"))
    fields += [pa.field(name, pa.string()) for name in URI_COLUMNS]
    fields += [pa.field(s.name, s.arrow_type) for s in field_specs().values()]
    fields += list(tag_fields or [])
    fields += outcome.values()
    return pa.schema(fields)
