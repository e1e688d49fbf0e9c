"""Arrow tables of the loss log and their Parquet I/O through fsspec."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import LOSS_SCHEMA, RUN_LOSS_SCHEMA
from nst_ops.recorder import LossLog
from workflows.storage import StorageOptions, read_bytes, write_bytes


def loss_table(log: LossLog, pair_id: str | None = None) -> pa.Table:
    """LossLog → table with LOSS_SCHEMA (RUN_LOSS_SCHEMA, with pair_id, when one is given)."""
    columns = {
        "iteration": log.iteration,
        **{f"{name}_loss": values for name, values in log.terms.items()},
        "stage": log.stage,
        "scale": log.scale,
        "style_layer_losses": [list(d.items()) for d in log.style_layer_losses],
        "elapsed_s": log.elapsed_s,
        "compile_s": log.compile_s,
    }
    if pair_id is None:
        return pa.table(columns, schema=LOSS_SCHEMA)
    return pa.table({"pair_id": [pair_id] * len(log), **columns}, schema=RUN_LOSS_SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_parquet(table: pa.Table, uri: str, options: StorageOptions | None = None) -> None:
    write_bytes(uri, parquet_bytes(table), options)


def read_parquet(uri: str, options: StorageOptions | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(uri, options)))
