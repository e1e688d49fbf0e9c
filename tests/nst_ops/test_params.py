"""StyleParams validation: every rule gives a clear error naming the field."""

from __future__ import annotations

import math

import pytest

from nst_ops.params import MAX_ITERATIONS, ParamError, StyleParams

BAD = [
    ("content_weight", -1.0, "must be >= 0"),
    ("style_weight", math.nan, "must be finite"),
    ("tv_weight", "a", "must be a number"),
    ("content_layers", (), "at least one layer"),
    ("style_layers", ("relu1_1", "relu9_9"), "unknown layer 'relu9_9'; valid layers: conv1_1"),
    ("style_layers", ("relu1_1", "relu1_1"), "twice"),
    ("style_layer_weights", (1.0, 2.0), "has 2 values for 5 style_layers"),
    ("style_layer_weights", (1.0, 1.0, 1.0, 1.0, -2.0), "must be >= 0"),
    ("optimizer", "sgd", "must be one of lbfgs, adam"),
    ("learning_rate", 0.0, "must be > 0"),
    ("iterations", 0, f"between 1 and {MAX_ITERATIONS}"),
    ("iterations", MAX_ITERATIONS + 1, "between 1"),
    ("iterations", 2.5, "must be an integer"),
    ("init", "noise", "must be one of content, random, style"),
    ("seed", -1, "between 0"),
    ("image_size", 8, "between 16 and 4096"),
    ("style_scale", 0.0, "must be > 0"),
    ("style_scale", 100.0, "between 0.05 and 8"),
    ("pooling", "min", "must be one of max, avg"),
    ("target_loss", -5.0, "must be >= 0"),
    ("preserve_color", "yes", "must be one of none, luminance"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_invalid_values_are_rejected(name: str, value: object, message: str) -> None:
    with pytest.raises(ParamError, match=message) as info:
        StyleParams(**{name: value})  # type: ignore[arg-type]
    assert info.value.field == name
    assert str(info.value).startswith(f"{name}: ")


def test_defaults_and_lists() -> None:
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_2"]  # a list, as from JSON
    p = StyleParams(style_layers=layers)  # type: ignore[arg-type]
    assert p.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_2")
    assert StyleParams().content_layers == ("relu4_2",)
    assert StyleParams().to_dict()["style_layers"][0] == "relu1_1"
    with pytest.raises(AttributeError):
        StyleParams().iterations = 3  # type: ignore[misc]
