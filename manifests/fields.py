"""StyleParams fields described for text and Parquet: kind, Arrow type, parsing from strings.

Everything here is derived from the `StyleParams` dataclass (its type hints, defaults and help),
so that a field is named and defaulted in one place only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import pyarrow as pa

from nst_ops.params import ParamError, StyleParams

_ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "str_list": pa.list_(pa.string()),
    "float_list": pa.list_(pa.float64()),
    "int_list": pa.list_(pa.int64()),
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # float | int | bool | str | str_list | float_list | int_list
    optional: bool
    default: Any
    help: str
    choices: tuple[str, ...] | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW[self.kind]


# How a parse error names a kind ("cannot parse 'x' as ...").
_KIND_TEXT = {
    "float_list": "numbers separated by '{sep}'",
    "int_list": "integers separated by '{sep}'",
    "bool": "bool (true/false, 1/0, yes/no)",
}


def _kind(tp: Any) -> tuple[str, bool, tuple[str, ...] | None]:
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        kind, _, choices = _kind(inner[0])
        return kind, True, choices
    if typing.get_origin(tp) is Literal:
        return "str", False, tuple(str(a) for a in args)
    if typing.get_origin(tp) is tuple:
        return {str: "str_list", float: "float_list", int: "int_list"}[args[0]], False, None
    return {float: "float", int: "int", bool: "bool", str: "str"}[tp], False, None


@cache
def field_specs() -> dict[str, FieldSpec]:
    hints = typing.get_type_hints(StyleParams)
    specs = {}
    for f in dataclasses.fields(StyleParams):
        kind, optional, choices = _kind(hints[f.name])
        specs[f.name] = FieldSpec(
            f.name, kind, optional, f.default, f.metadata.get("help", ""), choices
        )
    return specs


def parse_value(name: str, text: str, list_sep: str = ",") -> Any:
    """Parse a field value from text ('none' means None for optional fields).

    Raises ParamError naming the field on malformed text.
    """
    spec = field_specs()[name]
    text = text.strip()
    if spec.optional and text.lower() in ("none", "null", ""):
        return None
    try:
        if spec.kind == "float":
            return float(text)
        if spec.kind == "int":
            return int(text)
        if spec.kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if spec.kind == "str_list":
            return tuple(v.strip() for v in text.split(list_sep) if v.strip())
        if spec.kind == "float_list":
            return tuple(float(v) for v in text.split(list_sep) if v.strip())
        if spec.kind == "int_list":
            return tuple(int(v) for v in text.split(list_sep) if v.strip())
    except ValueError:
        kind = _KIND_TEXT.get(spec.kind, spec.kind).format(sep=list_sep)
        raise ParamError(name, f"cannot parse {text!r} as {kind}") from None
    return text


def format_value(value: Any, list_sep: str = ",") -> str:
    """Inverse of parse_value, for help texts and labels."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return list_sep.join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
