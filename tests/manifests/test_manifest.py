"""Manifest parsing (pure): schema checks, defaults, ids, tags, row errors, parse errors; a
pandas index in a manifest. Sweeps: test_sweep.py."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.manifest import ManifestError, check_schema, derive_pair_id, iter_rows, parse_row
from nst_ops.params import ParamError, StyleParams
from workflows.cli import main

BASE = {"content_uri": "c.jpg", "style_uri": "s.jpg"}


def test_null_and_missing_mean_default() -> None:
    row = parse_row(1, BASE | {"style_weight": None, "iterations": 7})
    assert row.params == StyleParams(iterations=7)
    assert row.error is None


def test_derived_id_is_deterministic_and_depends_on_params() -> None:
    a = parse_row(1, BASE | {"style_weight": 1000})
    b = parse_row(2, dict(BASE))  # default 1000.0 written or not: same pair
    c = parse_row(3, BASE | {"style_weight": 10.0})
    assert a.pair_id == b.pair_id != c.pair_id
    assert a.pair_id == derive_pair_id(BASE, StyleParams())


def test_schema_rejects_unknown_and_wrong_types_keeps_tags() -> None:
    good = pa.schema([("content_uri", pa.string()), ("style_uri", pa.string()),
                      ("style_weight", pa.int64()), ("tag_group", pa.string())])  # fmt: skip
    assert [f.name for f in check_schema(good)] == ["tag_group"]
    bad = pa.schema([("content_uri", pa.string()), ("bogus", pa.string()),
                     ("iterations", pa.string())])  # fmt: skip
    with pytest.raises(ManifestError) as info:
        check_schema(bad)
    message = str(info.value)
    assert "missing required column 'style_uri'" in message
    assert "unknown column 'bogus'" in message
    assert "column 'iterations' has type string, expected int64" in message


def test_int_columns_written_as_float_by_pandas_are_whole_numbers() -> None:
    """pandas turns an int column with gaps into float64 (NaN → null in Parquet): 500.0 is
    500 and null the default; 2.5 is a row error naming the column, not a refused manifest."""
    table = pa.table({"content_uri": ["c.jpg"] * 3, "style_uri": ["s.jpg"] * 3,
                      "iterations": [5.0, None, 2.5], "scales": [[32.0, 512.0], None, None]})  # fmt: skip
    assert check_schema(table.schema) == []
    first, second, third = iter_rows(table.to_batches())
    assert first.params is not None and second.params is not None
    assert (first.params.iterations, first.params.scales) == (5, (32, 512))
    assert isinstance(first.params.iterations, int) and second.params.iterations == 500
    assert first.inputs == parse_row(1, BASE | {"iterations": 5, "scales": [32, 512]}).inputs
    assert third.error == "iterations: must be a whole number, got 2.5"


def test_list_fields_may_be_text_cells() -> None:
    """A list parameter written as text (by hand, from a CSV, or copied from the report's
    a+b+c labels): '+' or ',' between the items."""
    table = pa.table({"content_uri": ["c.jpg"] * 4, "style_uri": ["s.jpg"] * 4,
                      "style_layers": ["relu1_1+relu2_1", "relu1_1, relu2_1", "relu9_1", None],
                      "style_layer_weights": ["0.5+0.5", "none", None, "x+1"]})  # fmt: skip
    assert check_schema(table.schema) == []
    plus, comma, unknown, bad = iter_rows(table.to_batches())
    layers = ("relu1_1", "relu2_1")
    assert plus.params is not None and comma.params is not None
    assert (plus.params.style_layers, plus.params.style_layer_weights) == (layers, (0.5, 0.5))
    assert (comma.params.style_layers, comma.params.style_layer_weights) == (layers, None)
    assert unknown.error is not None and unknown.error.startswith("style_layers: ")
    assert bad.error == "style_layer_weights: cannot parse 'x+1' as numbers separated by '+'"


def test_row_errors_name_the_field() -> None:
    assert (parse_row(1, BASE | {"iterations": 0}).error or "").startswith("iterations: ")
    assert (parse_row(1, BASE | {"style_layers": ["relu9_1"]}).error or "").startswith(
        "style_layers: "
    )
    assert (parse_row(1, {"content_uri": "c.jpg", "style_uri": ""}).error or "").startswith(
        "style_uri"
    )


def test_bad_and_duplicate_ids_keep_own_keys_apart() -> None:
    batch = pa.RecordBatch.from_pylist([
        BASE | {"pair_id": "a"}, BASE | {"pair_id": "../evil"}, BASE | {"pair_id": "a"},
        BASE | {"pair_id": "b/c"},
    ])  # fmt: skip
    rows = list(iter_rows([batch]))
    assert [r.own_key for r in rows] == [True, False, False, False]
    assert "must match" in (rows[1].error or "") and "must match" in (rows[3].error or "")
    assert rows[2].error == "duplicate pair_id 'a' (first at row 1)"
    assert [r.row for r in rows] == [1, 2, 3, 4]


def test_tags_carried() -> None:
    assert parse_row(1, BASE | {"tag_x": 3}).tags == {"tag_x": 3}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("style_layer_weights", "1,x", "cannot parse '1,x' as numbers separated by ','"),
        ("scales", "1,x", "cannot parse '1,x' as integers separated by ','"),
        ("photo_two_stage", "maybe", "cannot parse 'maybe' as bool (true/false, 1/0, yes/no)"),
        ("iterations", "2.5", "cannot parse '2.5' as int"),
    ],
)
def test_parse_errors_say_what_was_expected(name: str, text: str, message: str) -> None:
    from manifests.fields import parse_value

    with pytest.raises(ParamError) as error:
        parse_value(name, text)
    assert str(error.value) == f"{name}: {message}"


def test_a_pandas_index_is_ignored_with_a_note(examples, tmp_path, capsys) -> None:
    """A manifest written from a filtered DataFrame (its index kept as `__index_level_0__`, or a
    named index in the pandas metadata) validates and appends; nothing else is let through."""
    import pandas as pd

    frame = pd.DataFrame({"content_uri": [str(examples / "content/tubingen.jpg")] * 4,
                          "style_uri": [str(examples / "style/wave.jpg")] * 4,
                          "iterations": [3, 4, 5, 6]})  # fmt: skip
    filtered = tmp_path / "filtered.parquet"
    frame[frame.iterations != 5].to_parquet(filtered)  # index 0, 1, 3: stored as a column
    assert "__index_level_0__" in pq.read_schema(filtered).names
    named = tmp_path / "named.parquet"
    frame[frame.iterations != 5].rename_axis("run_no").to_parquet(named)
    for path, column in ((filtered, "__index_level_0__"), (named, "run_no")):
        assert check_schema(pq.read_schema(path)) == []
        assert main(["manifest", "validate", str(path)]) == 0
        err = capsys.readouterr().err
        assert (
            f"note: {path}: ignoring column '{column}' (a pandas index; write with index=False)"
            in err
        )
    assert main(["manifest", "sweep", "--content", str(examples / "content/tubingen.jpg"),
                 "--style", str(examples / "style/wave.jpg"), "-o", str(filtered),
                 "--grid", "iterations=9", "--append"]) == 0  # fmt: skip
    appended = pq.read_table(filtered)
    assert "__index_level_0__" not in appended.column_names
    assert appended.column("iterations").to_pylist() == [3, 4, 6, 9]
    other = pa.table({**{k: [v] for k, v in BASE.items()}, "extra": [1]}).replace_schema_metadata(
        {b"pandas": b"{}"}
    )
    with pytest.raises(ManifestError, match="unknown column 'extra'"):
        check_schema(other.schema)
