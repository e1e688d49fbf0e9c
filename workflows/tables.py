"""Arrow tables of the loss log and their Parquet I/O through fsspec."""

from __future__ import annotations

import io
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import LOSS_SCHEMA, RUN_LOSS_SCHEMA, YARDSTICK_TERMS
from nst_ops.recorder import LossLog
from nst_ops.yardstick import Yardstick
from workflows.storage import StorageOptions, read_bytes, write_bytes


def loss_table(
    log: LossLog,
    pair_id: str | None = None,
    yardsticks: Mapping[int, Yardstick | None] | None = None,
) -> pa.Table:
    """LossLog → table with LOSS_SCHEMA (RUN_LOSS_SCHEMA, with pair_id, when one is given);
    `yardsticks`: the yardstick at some rows (checkpoints), null at the others."""
    marks = yardsticks or {}
    measured = {
        f"yardstick_{term}": [_term(marks.get(i), term) for i in range(len(log))]
        for term in YARDSTICK_TERMS
    }
    columns = {
        "iteration": log.iteration,
        **{f"{name}_loss": values for name, values in log.terms.items()},
        "stage": log.stage,
        "scale": log.scale,
        "style_layer_losses": [list(d.items()) for d in log.style_layer_losses],
        "elapsed_s": log.elapsed_s,
        "compile_s": log.compile_s,
        **measured,
    }
    if pair_id is None:
        return pa.table(columns, schema=LOSS_SCHEMA)
    return pa.table({"pair_id": [pair_id] * len(log), **columns}, schema=RUN_LOSS_SCHEMA)


def _term(yard: Yardstick | None, term: str) -> float | None:
    """Yardstick field of YARDSTICK_TERMS `term` ("content_loss" → yard.content_loss)."""
    return None if yard is None else float(getattr(yard, term))


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_parquet(table: pa.Table, uri: str, options: StorageOptions | None = None) -> None:
    write_bytes(uri, parquet_bytes(table), options)


def read_parquet(uri: str, options: StorageOptions | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(uri, options)))
