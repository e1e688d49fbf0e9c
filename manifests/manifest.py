"""Manifest rows → validated pairs. Pure Arrow/Python: reading and writing files is the caller's.

A manifest is a Parquet table with `content_uri`, `style_uri` (required), optional `pair_id`,
`content_mask_uri`, `style_mask_uri`, any StyleParams field (a missing column or a null cell means
the default) and `tag_*` columns carried through untouched. A pandas index written as columns
is ignored; anything else is rejected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from manifests.fields import field_specs, parse_value
from manifests.schema import (
    AUTO_MASK,
    PAIR_ID_PATTERN,
    REQUIRED_COLUMNS,
    TAG_PREFIX,
    URI_COLUMNS,
    manifest_schema,
)
from nst_ops.params import ParamError, StyleParams

_PAIR_ID = re.compile(PAIR_ID_PATTERN)
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


class ManifestError(ValueError):
    """The manifest as a whole is unusable (schema, types); nothing runs."""


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row, 1-based `row` number, its id and (when valid) its parameters."""

    row: int
    pair_id: str
    values: dict[str, Any]
    params: StyleParams | None
    error: str | None
    # False for a malformed or duplicate pair_id: its result is kept under its row number.
    own_key: bool = True

    @property
    def inputs(self) -> str:
        """Fingerprint of what the pair's result depends on (URIs and resolved params): the
        derived pair_id, whether or not the manifest gives its own (done markers record it)."""
        return derive_pair_id(self.values, self.params)

    @property
    def tags(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k.startswith(TAG_PREFIX)}


def index_columns(schema: pa.Schema) -> list[str]:
    """The columns a pandas DataFrame's index became (`__index_level_0__`, or a named index
    listed in the pandas metadata) that are no manifest column: ignored, not refused."""
    names = [n for n in schema.names if _PANDAS_INDEX.fullmatch(n)]
    try:
        meta = json.loads((schema.metadata or {}).get(b"pandas", b"{}"))
    except ValueError:
        meta = {}
    listed = meta.get("index_columns", []) if isinstance(meta, dict) else []
    known = manifest_schema().names
    names += [n for n in listed if isinstance(n, str) and n in schema.names and n not in known]
    return sorted(set(names), key=schema.names.index)


def check_schema(schema: pa.Schema) -> list[pa.Field]:
    """Raise ManifestError listing every problem; return the tag_ fields. A pandas index's
    columns (`index_columns`) are skipped."""
    expected = manifest_schema()
    problems = [f"missing required column {c!r}" for c in REQUIRED_COLUMNS if c not in schema.names]
    tags = []
    ignored = index_columns(schema)
    for f in schema:
        if f.name in ignored:
            continue
        if f.name.startswith(TAG_PREFIX):
            tags.append(f)
        elif f.name not in expected.names:
            problems.append(f"unknown column {f.name!r} (user columns must start with 'tag_')")
        elif not _castable(f.type, expected.field(f.name).type):
            want = expected.field(f.name).type
            problems.append(f"column {f.name!r} has type {f.type}, expected {want}")
    if problems:
        raise ManifestError("; ".join(problems))
    return tags


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want or pa.types.is_null(have):
        return True
    t = pa.types
    if t.is_list(want):  # or text, as the report writes lists: relu1_1+relu2_1 (or a,b)
        if t.is_string(have) or t.is_large_string(have):
            return True
        return bool(t.is_list(have) or t.is_large_list(have)) and _castable(
            have.value_type, want.value_type
        )
    if t.is_floating(want):
        return bool(t.is_integer(have) or t.is_floating(have))
    if t.is_integer(want):  # floats too: a pandas int column with gaps is float64
        return bool(t.is_integer(have) or t.is_floating(have))
    return bool(t.is_string(want) and t.is_large_string(have))


def derive_pair_id(values: dict[str, Any], params: StyleParams | None) -> str:
    """Deterministic id: sha256 of the URIs and the resolved params (defaults filled in)."""
    key = {c: values.get(c) for c in URI_COLUMNS}
    if params is not None:
        key |= params.to_dict()
    else:
        key |= {k: values.get(k) for k in field_specs()}
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return "p" + hashlib.sha256(blob).hexdigest()[:15]


def params_from_values(values: dict[str, Any]) -> StyleParams:
    """StyleParams from a row's cells; nulls and absent columns mean the default."""
    given: dict[str, Any] = {}
    for name, spec in field_specs().items():
        value = values.get(name)
        if value is None:
            continue
        if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if spec.kind.endswith("_list") and isinstance(value, str):  # a text cell: a+b or a,b
            value = parse_value(name, value.replace(",", "+"), "+")
            if value is None:
                continue
            value = list(value)
        if spec.kind in ("int", "int_list"):  # pandas writes an int column with gaps as float
            value = _whole(name, value)
        if isinstance(value, list):
            value = tuple(float(v) if spec.kind == "float_list" else v for v in value)
        given[name] = value
    return StyleParams(**given)


def _whole(name: str, value: Any) -> Any:
    """An integral float as the int it is (500.0 → 500; in a list, each); ParamError for 2.5,
    nan or inf."""
    if isinstance(value, list):
        return [_whole(name, v) for v in value]
    if not isinstance(value, float):
        return value
    if not value.is_integer():
        raise ParamError(name, f"must be a whole number, got {value:g}")
    return int(value)


def parse_row(row: int, values: dict[str, Any]) -> ManifestRow:
    """Validate one row. Problems become `error` (a one-line message naming the field)."""
    params, error = None, None
    try:
        for col in REQUIRED_COLUMNS:
            if not values.get(col):
                raise ParamError(col, "is required and empty")
        mask, other = "content_mask_uri", "style_mask_uri"
        if bool(values.get(mask)) != bool(values.get(other)):
            mask, other = (mask, other) if values.get(mask) else (other, mask)
            raise ParamError(mask, f"given without {other}: give both masks or neither")
        if (values.get(mask) == AUTO_MASK) != (values.get(other) == AUTO_MASK):
            mask, other = (mask, other) if values.get(mask) == AUTO_MASK else (other, mask)
            raise ParamError(mask, f"{AUTO_MASK!r} needs {other} {AUTO_MASK!r} too")
        params = params_from_values(values)
    except ParamError as e:
        error = str(e)
    except TypeError as e:
        error = f"invalid value: {e}"
    given = values.get("pair_id")
    pair_id = given if given is not None else derive_pair_id(values, params)
    if given is not None and not _PAIR_ID.fullmatch(str(given)):
        message = f"pair_id {given!r} must match {PAIR_ID_PATTERN}"
        return ManifestRow(row, str(pair_id), values, None, message, own_key=False)
    return ManifestRow(row, str(pair_id), values, params, error)


def iter_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[ManifestRow]:
    """Stream parsed rows (1-based numbering), flagging duplicate pair_ids after the first."""
    seen: dict[str, int] = {}
    number = 0
    for batch in batches:
        for values in batch.to_pylist():
            number += 1
            parsed = parse_row(number, values)
            first = seen.setdefault(parsed.pair_id, number)
            if first != number and parsed.own_key:
                message = f"duplicate pair_id {parsed.pair_id!r} (first at row {first})"
                parsed = ManifestRow(number, parsed.pair_id, values, None, message, own_key=False)
            yield parsed
