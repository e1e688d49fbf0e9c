"""One-line checks of a `StyleParams` field's value; each failure is a `ParamError` naming it."""

from __future__ import annotations

import math
from typing import Any

from nst_ops.vgg import VGG19_LAYER_NAMES


class ParamError(ValueError):
    """A StyleParams field has an invalid value; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def check_number(name: str, value: Any, minimum: float = 0.0, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ParamError(name, f"must be finite, got {value!r}")
    if positive and value <= 0:
        raise ParamError(name, f"must be > 0, got {value!r}")
    if value < minimum:
        raise ParamError(name, f"must be >= {minimum:g}, got {value!r}")


def check_integer(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(name, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ParamError(name, f"must be between {lo} and {hi}, got {value}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def check_layers(name: str, layers: tuple[str, ...]) -> None:
    if not layers:
        raise ParamError(name, "needs at least one layer")
    for layer in layers:
        if layer not in VGG19_LAYER_NAMES:
            valid = " ".join(VGG19_LAYER_NAMES)
            raise ParamError(name, f"unknown layer {layer!r}; valid layers: {valid}")
    if len(set(layers)) != len(layers):
        raise ParamError(name, f"lists a layer twice: {','.join(layers)}")
