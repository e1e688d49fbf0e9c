"""Parquet schemas of the manifest, the results table and the loss table — declared once here and
imported by every reader, writer and test.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from manifests.fields import field_specs
from nst_ops.objective import TERM_NAMES

TAG_PREFIX = "tag_"
PAIR_ID_PATTERN = r"[A-Za-z0-9._-]{1,128}"

# Per-iteration loss table (one row per evaluation; see nst_ops.recorder). `pair_id` is present
# in a run's losses.parquet and per-pair loss files, absent from `nst stylize`'s table. One
# `{name}_loss` column per term of nst_ops.objective.LOSS_TERMS, in order.
LOSS_FIELDS = [
    pa.field("iteration", pa.int64(), nullable=False),
    *(pa.field(f"{name}_loss", pa.float64()) for name in TERM_NAMES),
    pa.field("stage", pa.int64()),
    pa.field("scale", pa.int64()),
    pa.field("style_layer_losses", pa.map_(pa.string(), pa.float64())),
    pa.field("elapsed_s", pa.float64()),
]
LOSS_SCHEMA = pa.schema(LOSS_FIELDS)
RUN_LOSS_SCHEMA = pa.schema([pa.field("pair_id", pa.string(), nullable=False), *LOSS_FIELDS])

URI_COLUMNS = ("content_uri", "style_uri", "content_mask_uri", "style_mask_uri")
REQUIRED_COLUMNS = ("content_uri", "style_uri")


@cache
def manifest_schema() -> pa.Schema:
    """Every column a manifest may have (besides tag_* columns, carried through untouched)."""
    fields = [pa.field("pair_id", pa.string())]
    fields += [pa.field(name, pa.string()) for name in URI_COLUMNS]
    fields += [pa.field(s.name, s.arrow_type) for s in field_specs().values()]
    return pa.schema(fields)


RESULT_FIELDS_AFTER_PARAMS = [
    pa.field("output_uri", pa.string()),
    pa.field("iterations_run", pa.int64()),
    *(pa.field(f"final_{name}_loss", pa.float64()) for name in TERM_NAMES),
    pa.field("warnings", pa.list_(pa.string())),
    pa.field("yardstick_content_loss", pa.float64()),
    pa.field("yardstick_style_loss", pa.float64()),
    pa.field("yardstick_total", pa.float64()),
    pa.field("iterations_to_target", pa.int64()),
    pa.field("wall_s", pa.float64()),
    pa.field("batch_size", pa.int64()),  # pairs optimised together (pairs-per-gpu)
    pa.field("device", pa.string()),
    pa.field("gpu_ids", pa.list_(pa.int64())),
    pa.field("node", pa.string()),
    pa.field("attempt", pa.int64()),
    pa.field("started_at", pa.timestamp("us", tz="UTC")),
    pa.field("finished_at", pa.timestamp("us", tz="UTC")),
]


def results_schema(tag_fields: list[pa.Field] | None = None) -> pa.Schema:
    """Results table: ids and status, URIs, every StyleParams field, tag_ columns, outcome."""
    fields = [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | error
        pa.field("error", pa.string()),
    ]
    fields += [pa.field(name, pa.string()) for name in URI_COLUMNS]
    fields += [pa.field(s.name, s.arrow_type) for s in field_specs().values()]
    fields += list(tag_fields or [])
    fields += RESULT_FIELDS_AFTER_PARAMS
    return pa.schema(fields)
