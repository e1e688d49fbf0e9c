"""Sweep manifests: the cartesian product of contents × styles × one grid per StyleParams field.

Grid syntax: `name=v1,v2,...`; list-valued fields write their items joined by `+`
(`style_layers=relu1_1+relu2_1,relu1_1+relu4_2`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from manifests.fields import field_specs, parse_value
from manifests.schema import AUTO_MASK, TAG_PREFIX, manifest_schema
from nst_ops.params import ParamError, StyleParams

LIST_SEP = "+"


def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """`name=v1,v2` → (name, [parsed v1, parsed v2]); ParamError naming the field."""
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise ParamError("--grid", f"expected name=v1,v2,... got {spec!r}")
    if name not in field_specs():
        valid = ", ".join(field_specs())
        hint = " (a tag takes --tag NAME=VALUE)" if name.startswith(TAG_PREFIX) else ""
        raise ParamError("--grid", f"unknown field {name!r}{hint}; valid: {valid}")
    try:
        parsed = [parse_value(name, v, LIST_SEP) for v in values.split(",")]
    except ParamError as e:  # named as the flag it came from
        raise ParamError("--grid", str(e)) from None
    return name, parsed


def parse_tag(spec: str) -> tuple[str, str]:
    """`name=value` → ("tag_name", "value") (a `tag_` prefix given is kept once); ParamError
    naming --tag."""
    name, sep, value = spec.partition("=")
    name = name.strip().removeprefix(TAG_PREFIX)
    if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ParamError("--tag", f"expected name=value, name of letters, digits, _; got {spec!r}")
    return TAG_PREFIX + name, value


def sweep_table(
    contents: Sequence[str],
    styles: Sequence[str],
    grids: Sequence[tuple[str, list[Any]]],
    masks: tuple[str, str] | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> pa.Table:
    """One row per (content, style, grid combination); every combination is validated.
    `masks` = (content mask, style mask) URIs, for a single content and style only, or
    (AUTO_MASK, AUTO_MASK) for every row (the worker computes them); `tags`
    (parse_tag's) are string columns with one value for every row."""
    _check_inputs(contents, styles, grids, masks, tags)
    names = [n for n, _ in grids]
    rows = []
    for combo in itertools.product(*(values for _, values in grids)):
        settings = dict(zip(names, combo, strict=True))
        try:
            StyleParams(**settings)
        except ParamError as e:  # an invalid combination, named as the flag it came from
            raise ParamError("--grid", str(e)) from None
        for content, style in itertools.product(contents, styles):
            rows.append({"content_uri": content, "style_uri": style, **settings})
    schema = manifest_schema()
    fields = [schema.field("content_uri"), schema.field("style_uri")]
    if masks is not None:
        for row in rows:
            row["content_mask_uri"], row["style_mask_uri"] = masks
        fields += [schema.field("content_mask_uri"), schema.field("style_mask_uri")]
    fields += [schema.field(n) for n in names]
    columns = {f.name: [_plain(r[f.name]) for r in rows] for f in fields}
    columns |= {name: [value] * len(rows) for name, value in tags}
    fields += [pa.field(name, pa.string()) for name, _ in tags]
    return pa.table(columns, schema=pa.schema(fields))


def _check_inputs(
    contents: Sequence[str],
    styles: Sequence[str],
    grids: Sequence[tuple[str, list[Any]]],
    masks: tuple[str, str] | None,
    tags: Sequence[tuple[str, str]],
) -> None:
    """sweep_table's arguments: ParamError naming the flag when unusable."""
    if not contents or not styles:
        raise ParamError("--content" if not contents else "--style", "matched no images")
    auto = masks == (AUTO_MASK, AUTO_MASK)
    if masks is not None and not auto and (len(contents) != 1 or len(styles) != 1):
        raise ParamError("--content-mask", "masks need exactly one content and one style image")
    for flag, given, verb in (("--grid", [n for n, _ in grids], "swept"),
                              ("--tag", [n for n, _ in tags], "given")):  # fmt: skip
        twice = sorted({n for n in given if given.count(n) > 1})
        if twice:
            raise ParamError(flag, f"{', '.join(twice)} {verb} twice")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
