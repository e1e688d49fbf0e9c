"""Layout of a run under --output, result rows, resume markers and consolidation.

images/{pair_id}.png              the stylized image
images/{pair_id}.content_mask.png with mask URIs `auto`: the masks it used (Luan's palette)
images/{pair_id}.style_mask.png
pairs/{pair_id}/result.parquet    its result row        (overwritten by a retry or re-run)
pairs/{pair_id}/losses.parquet    its loss table
done/{pair_id}                    marker written last: the pair is complete and ok; it
                                  holds the row's inputs fingerprint (ManifestRow.inputs)
rejected/row-{n}.parquet          result of a row whose pair_id is malformed or duplicated
results.parquet, losses.parquet   consolidated at the end, one result row per manifest row
run.json                          run metadata
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.fields import field_specs
from manifests.manifest import ManifestError, ManifestRow
from manifests.results import PairResult, Status
from manifests.schema import RUN_LOSS_SCHEMA, TAG_PREFIX, URI_COLUMNS, results_schema
from workflows.batch.config import WorkerConfig
from workflows.batch.manifest import Manifest
from workflows.batch.record import read_records
from workflows.errors import InputError
from workflows.storage import (
    StorageOptions,
    filesystem,
    join,
    list_names,
    read_bytes,
    with_retries,
    write_bytes,
)
from workflows.tables import parquet_bytes


def image_uri(output: str, pair_id: str) -> str:
    return join(output, "images", f"{pair_id}.png")


def auto_mask_uris(output: str, pair_id: str) -> tuple[str, str]:
    """Where a pair's automatic (content, style) masks go: beside its image."""
    return tuple(  # type: ignore[return-value]
        join(output, "images", f"{pair_id}.{side}_mask.png") for side in ("content", "style")
    )


def result_uri(output: str, row: ManifestRow) -> str:
    if not row.own_key:
        return join(output, "rejected", f"row-{row.row}.parquet")
    return join(output, "pairs", row.pair_id, "result.parquet")


def losses_uri(output: str, pair_id: str) -> str:
    return join(output, "pairs", pair_id, "losses.parquet")


def done_uri(output: str, pair_id: str) -> str:
    return join(output, "done", pair_id)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def result_row(row: ManifestRow, result: PairResult) -> dict[str, Any]:
    """One results-table row: id, status, error, URIs, every StyleParams field, tags, then the
    rest of the outcome."""
    outcome = result.columns()
    record = {"pair_id": row.pair_id, "status": outcome.pop("status")}
    record["error"] = outcome.pop("error")
    record |= {c: row.values.get(c) for c in URI_COLUMNS}
    params = row.params.to_dict() if row.params is not None else {}
    for name in field_specs():
        record[name] = params.get(name, row.values.get(name))
    return record | row.tags | outcome


def result_table(row: ManifestRow, result: PairResult, tag_fields: list[pa.Field]) -> pa.Table:
    schema = results_schema(tag_fields)
    record = result_row(row, result)
    return pa.Table.from_pylist([{name: record.get(name) for name in schema.names}], schema=schema)


def write_result(cfg: WorkerConfig, row: ManifestRow, result: PairResult) -> None:
    """Write a row's result; for an ok row the done marker last (the commit point)."""
    table = result_table(row, result, cfg.tag_fields)
    write_bytes(result_uri(cfg.output, row), parquet_bytes(table), cfg.options)
    if result.ok:
        write_bytes(done_uri(cfg.output, row.pair_id), row.inputs.encode(), cfg.options)


def done_ids(output: str, options: StorageOptions | None = None) -> set[str]:
    """Ids of pairs already complete and ok (for resume)."""
    return set(list_names(join(output, "done"), options))


def done_inputs(
    output: str, ids: set[str], options: StorageOptions | None = None
) -> dict[str, str]:
    """The inputs fingerprint each done marker of `ids` records ('' for a marker of a version
    that wrote empty ones); all read concurrently."""
    uris = {pair_id: done_uri(output, pair_id) for pair_id in ids}
    blobs = _read_many(list(uris.values()), options)
    return {pair_id: blobs.get(uri, b"").decode(errors="replace") for pair_id, uri in uris.items()}


def _read_many(uris: list[str], options: StorageOptions | None) -> dict[str, bytes]:
    """Fetch many small objects concurrently where the filesystem supports it (s3fs does)."""
    if not uris:
        return {}
    fs, _ = filesystem(uris[0], options)
    paths = [filesystem(u, options)[1] for u in uris]

    def fetch() -> dict[str, Any]:
        blobs = fs.cat(paths, on_error="return")
        for value in blobs.values():  # a missing file is fine; an unreachable store is not
            if isinstance(value, Exception) and not isinstance(value, FileNotFoundError):
                raise value
        return {p: v for p, v in blobs.items() if isinstance(v, bytes)}

    blobs = with_retries(uris[0], fetch)
    return {u: blobs[p] for u, p in zip(uris, paths, strict=True) if p in blobs}


def consolidate(
    output: str,
    rows: Iterable[ManifestRow],
    tag_fields: list[pa.Field],
    options: StorageOptions | None = None,
    chunk: int = 512,
    to: str | None = None,
) -> tuple[int, int]:
    """Write results.parquet and losses.parquet (into `to`, default `output`) from the per-pair
    files, in manifest order, streaming (memory bounded by `chunk`). Returns (result rows, loss
    rows) written."""
    schema, folder = results_schema(tag_fields), to or output
    n_results = n_losses = 0
    with (
        _writer(join(folder, "results.parquet"), schema, options) as results,
        _writer(join(folder, "losses.parquet"), RUN_LOSS_SCHEMA, options) as losses,
    ):
        for batch in _chunks(rows, chunk):
            uris = [result_uri(output, r) for r in batch]
            blobs = _read_many(uris, options)
            found = [(u, r) for u, r in zip(uris, batch, strict=True) if u in blobs]
            if found:
                tables = _parquet_tables([blobs[u] for u, _ in found])
                table = _as_results(tables, [r for _, r in found], schema)
                results.write_table(table)
                n_results += table.num_rows
                chunk_losses = _losses_of(output, table, options)
                if chunk_losses is not None:  # one row group per chunk, not per pair
                    losses.write_table(chunk_losses)
                    n_losses += chunk_losses.num_rows
    return n_results, n_losses


def _as_results(tables: list[pa.Table], rows: list[ManifestRow], schema: pa.Schema) -> pa.Table:
    """The pairs' result files as rows of this run's results `schema`: their tag columns from
    the manifest as it is now (tags label rows, they are no inputs: a pair whose tags changed
    is not run again, and its result shows the new ones), and a column that the version which
    wrote a file did not have as nulls."""
    bare = [t.drop_columns([c for c in t.column_names if c.startswith(TAG_PREFIX)]) for t in tables]
    table = pa.concat_tables(bare, promote_options="permissive")
    columns = []
    for field in schema:
        if field.name.startswith(TAG_PREFIX):
            columns.append(pa.array([r.tags.get(field.name) for r in rows], field.type))
        elif field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _losses_of(output: str, results: pa.Table, options: StorageOptions | None) -> pa.Table | None:
    """The loss tables of the pairs of `results` that have one (ok or diverged), as one."""
    statuses = results["status"].to_pylist()
    ids = [i for i, s in zip(results["pair_id"].to_pylist(), statuses, strict=True)
           if s in (Status.OK.value, Status.DIVERGED.value)]  # fmt: skip
    blobs = _read_many([losses_uri(output, i) for i in ids], options)
    parts = [_conform(t) for t in _parquet_tables(list(blobs.values()))]
    return pa.concat_tables(parts) if parts else None


def _parquet_tables(blobs: list[bytes]) -> list[pa.Table]:
    """Many small Parquet files, decoded on a few threads (pyarrow releases the GIL). A
    per-pair file is mostly footer: ParquetFile.read without Arrow's own threads decodes one
    in ~0.8 ms where pq.read_table (the dataset machinery) takes ~2-3 ms."""

    def decode(blob: bytes) -> pa.Table:
        return pq.ParquetFile(pa.BufferReader(blob)).read(use_threads=False)

    if len(blobs) < 8:
        return [decode(b) for b in blobs]
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(decode, blobs))


def _conform(losses: pa.Table) -> pa.Table:
    """A pair's loss table in RUN_LOSS_SCHEMA; a column that the version which wrote it did not
    have (e.g. compile_s) as nulls."""
    columns = [
        losses[f.name].cast(f.type) if f.name in losses.column_names
        else pa.nulls(losses.num_rows, f.type)
        for f in RUN_LOSS_SCHEMA
    ]  # fmt: skip
    return pa.Table.from_arrays(columns, schema=RUN_LOSS_SCHEMA)


def tables_so_far(output: str, to: str, options: StorageOptions | None = None) -> str:
    """Consolidate an unfinished run's results so far into the local folder `to` (its manifest
    from run.json); return a line saying how many rows have one. InputError when `output` has
    no run.json or no result yet."""
    try:
        meta = json.loads(read_bytes(join(output, "run.json"), options))
        status = f"run.json says {meta.get('status', 'unknown')}"
    except ValueError as e:
        raise InputError(f"{output}/run.json: not JSON ({e})") from None
    except InputError as e:  # shards' drivers write their own records, and no run.json
        shards = [r for _, r in sorted(read_records(output, options or {}).items()) if r.shard]
        if not str(e).endswith(": no such file") or not shards:
            raise
        meta = {"manifest": shards[0].manifest, "rows": shards[0].rows}
        status = ", ".join(f"shard {r.shard} {r.status}" for r in shards)
    try:
        with Manifest(meta["manifest"], options, meta.get("rows")) as manifest:
            done, _ = consolidate(output, manifest.rows(), manifest.tag_fields, options, to=to)
    except ManifestError as e:
        raise InputError(
            f"{output}: run not finished, and its manifest (run.json) is unusable: {e}"
        ) from None
    if not done:
        raise InputError(f"{output}: no pair has a result yet ({status})")
    return f"run not finished ({status}): {done} of {meta.get('rows')} rows so far"


class _writer:
    """ParquetWriter onto a local temporary file, uploaded (with retries) to `uri` only when
    the block finishes without error — a store outage never leaves a half-written table."""

    def __init__(self, uri: str, schema: pa.Schema, options: StorageOptions | None) -> None:
        self.uri, self.options = uri, options
        self.file = tempfile.NamedTemporaryFile(suffix=".parquet")  # noqa: SIM115
        self.writer = pq.ParquetWriter(self.file.name, schema)

    def __enter__(self) -> pq.ParquetWriter:
        return self.writer

    def __exit__(self, kind: object, *exc: object) -> None:
        self.writer.close()
        try:
            if kind is None:
                write_bytes(self.uri, Path(self.file.name).read_bytes(), self.options)
        finally:
            self.file.close()


def _chunks(rows: Iterable[ManifestRow], size: int) -> Iterator[list[ManifestRow]]:
    batch: list[ManifestRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
