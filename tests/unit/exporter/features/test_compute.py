"""Feature computation: every type, every issue kind, the CSV cell rule, inference."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

import numpy as np
import pytest

from exporter.features.compute import (
    MAX_UNEXPECTED_FIELDS,
    FeatureBatch,
    coerce_csv_cell,
    compute_features,
    compute_table_features,
    hash_value,
)
from exporter.features.table import RawColumn, RawTable, rows_to_table, table_to_rows
from exporter.schema import Schema, SchemaError, Source, parse_schema
from exporter.schema.inference import SchemaInference, infer_schema

NAN = math.nan


def schema_of(*features: dict[str, Any]) -> Schema:
    return parse_schema({"features": list(features)}, "test.yaml")


def numbers(batch: FeatureBatch, name: str) -> list[float | None]:
    return [None if math.isnan(v) else v for v in batch.numeric[name].tolist()]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1e3", 1000.0),
        (" 2", 2),
        ("", None),
        ("   ", None),
        ("abc", "abc"),
        ("1,5", "1,5"),
        ("-0", 0),
        ("inf", math.inf),
        ("-Infinity", -math.inf),
        ("007", 7),
        ("1_000", 1000),
        ("0x10", "0x10"),
        ("2.50", 2.5),
        (" a ", " a "),
    ],
)
def test_coerce_csv_cell(cell: str, expected: Any) -> None:
    value = coerce_csv_cell(cell)
    assert value == expected
    assert type(value) is type(expected)


def test_coerce_csv_cell_nan() -> None:
    value = coerce_csv_cell("nan")
    assert isinstance(value, float)
    assert math.isnan(value)


def test_hash_value_is_a_truncated_hmac() -> None:
    expected = hmac.new(b"key", b"paris", hashlib.sha256).hexdigest()[:16]
    assert hash_value(b"key", "paris") == expected
    assert hash_value(b"other", "paris") != expected
    assert len(expected) == 16


def test_numeric_values_and_issues() -> None:
    schema = schema_of({"name": "x", "type": "numeric", "range": [0, 10]})
    rows: list[dict[str, Any]] = [{"x": 1.5}, {"x": 3}, {"x": None}, {}, {"x": "4"}]
    rows += [{"x": True}, {"x": math.inf}]
    rows += [{"x": 11}, {"x": -0.0}, {"x": NAN}]
    batch = compute_features(schema, rows)
    assert numbers(batch, "x") == [1.5, 3.0, None, None, None, None, None, 11.0, 0.0, None]
    assert math.copysign(1.0, batch.numeric["x"][8]) == 1.0  # -0.0 is logged as 0.0
    assert batch.issues == [
        [],
        [],
        ["missing:x"],
        ["missing_field:x"],
        ["type_mismatch:x"],
        ["type_mismatch:x"],
        ["type_mismatch:x"],
        ["out_of_range:x"],
        [],
        ["missing:x"],
    ]
    assert batch.issue_counts() == {
        "missing_field:x": 1,
        "missing:x": 2,
        "type_mismatch:x": 3,
        "out_of_range:x": 1,
    }


def test_nullable_feature_reports_no_missing() -> None:
    schema = schema_of({"name": "x", "type": "numeric", "nullable": True})
    batch = compute_features(schema, [{"x": None}, {}, {"x": "a"}])
    assert batch.issues == [[], [], ["type_mismatch:x"]]


def test_integer_feature() -> None:
    schema = schema_of({"name": "n", "type": "integer", "range": [0, 5]})
    batch = compute_features(schema, [{"n": 3}, {"n": 4.0}, {"n": 2.5}, {"n": 7}])
    assert numbers(batch, "n") == [3.0, 4.0, None, 7.0]
    assert batch.issues == [[], [], ["type_mismatch:n"], ["out_of_range:n"]]


def test_boolean_feature() -> None:
    schema = schema_of({"name": "b", "type": "boolean"})
    values = [True, False, 1, 0.0, "TRUE", " false", 2, "yes", None]
    batch = compute_features(schema, [{"b": v} for v in values])
    assert batch.categorical["b"] == [
        "true",
        "false",
        "true",
        "false",
        "true",
        "false",
        None,
        None,
        None,
    ]
    mismatch = [["type_mismatch:b"]] * 2
    assert batch.issues == [[], [], [], [], [], [], *mismatch, ["missing:b"]]


def test_categorical_feature_renders_scalars_and_flags_unseen() -> None:
    schema = schema_of({"name": "c", "type": "categorical", "categories": ["a", 3, "1.5"]})
    values = ["a", 3, 3.0, 1.5, True, "z", ["a"], None]
    batch = compute_features(schema, [{"c": v} for v in values])
    assert batch.categorical["c"] == ["a", "3", "3", "1.5", "true", "z", None, None]
    assert batch.issues == [
        [],
        [],
        [],
        [],
        ["unseen_category:c"],
        ["unseen_category:c"],
        ["type_mismatch:c"],
        ["missing:c"],
    ]


def test_hashed_categorical_checks_categories_in_clear() -> None:
    schema = schema_of({"name": "c", "type": "categorical", "categories": ["a"], "log": "hash"})
    batch = compute_features(schema, [{"c": "a"}, {"c": "b"}, {"c": None}], hash_key=b"k")
    assert batch.categorical["c"] == [hash_value(b"k", "a"), hash_value(b"k", "b"), None]
    assert batch.issues == [[], ["unseen_category:c"], ["missing:c"]]
    with pytest.raises(ValueError, match="features c have log: hash; a hash key is required"):
        compute_features(schema, [{"c": "a"}])


def test_text_feature_lengths() -> None:
    schema = schema_of({"name": "t", "type": "text"})
    batch = compute_features(
        schema, [{"t": "hello big  world"}, {"t": 12345}, {"t": None}, {"t": {}}]
    )
    assert numbers(batch, "t.length_chars") == [16.0, 5.0, None, None]
    assert numbers(batch, "t.length_tokens") == [3.0, 1.0, None, None]
    assert batch.issues == [[], [], ["missing:t"], ["type_mismatch:t"]]


def test_array_feature_uniform_batch() -> None:
    schema = schema_of({"name": "img", "type": "array"})
    rows = [{"img": [[0, 2], [4, 6]]}, {"img": [[1, 1], [1, 1]]}]
    batch = compute_features(schema, rows)
    assert numbers(batch, "img.size") == [4.0, 4.0]
    assert numbers(batch, "img.mean") == [3.0, 1.0]
    assert numbers(batch, "img.std") == [pytest.approx(math.sqrt(5.0)), 0.0]
    assert numbers(batch, "img.min") == [0.0, 1.0]
    assert numbers(batch, "img.max") == [6.0, 1.0]
    assert batch.issues == [[], []]


def test_array_feature_ragged_rows_and_mismatches() -> None:
    schema = schema_of({"name": "v", "type": "array", "derive": ["size", "max"]})
    values = [[1, 2, 3], [5], [], ["a"], [1, [2]], 7, [1, math.inf], [True, False], None]
    batch = compute_features(schema, [{"v": v} for v in values])
    assert list(batch.numeric) == ["v.size", "v.max"]
    assert numbers(batch, "v.size") == [3.0, 1.0, 0.0, None, None, None, None, 2.0, None]
    assert numbers(batch, "v.max") == [3.0, 5.0, None, None, None, None, None, 1.0, None]
    mismatch = ["type_mismatch:v"]
    assert batch.issues == [[], [], [], mismatch, mismatch, mismatch, mismatch, [], ["missing:v"]]


def test_tensor_index_and_selector_sources() -> None:
    schema = schema_of(
        {"name": "third", "type": "numeric", "source": {"tensor": "input-0", "index": 2}},
        {"name": "cell", "type": "numeric", "source": {"tensor": "m", "index": [1, 0]}},
        {"name": "zip", "type": "categorical", "source": {"selector": "$.address.zip"}},
    )
    rows = [
        {"input-0": [1, 2, 3], "m": [[1, 2], [3, 4]], "address": {"zip": "75001"}},
        {"input-0": [1, 2], "m": [[1, 2]], "address": {"city": "Lyon"}},
    ]
    batch = compute_features(schema, rows)
    assert numbers(batch, "third") == [3.0, None]
    assert numbers(batch, "cell") == [3.0, None]
    assert batch.categorical["zip"] == ["75001", None]
    assert batch.issues == [[], ["missing_field:third", "missing_field:cell", "missing_field:zip"]]


def test_unexpected_fields_are_named_and_bounded() -> None:
    schema = schema_of({"name": "x", "type": "numeric"})
    long_name = "f" * 150
    rows: list[dict[str, Any]] = [{"x": 1, "extra": 2, long_name: 3}, {"x": 2}]
    rows.append({"x": 3, **{f"k{i}": i for i in range(30)}})
    batch = compute_features(schema, rows)
    assert batch.issues[0] == ["unexpected_field:extra", "unexpected_field:" + "f" * 100]
    assert batch.issues[1] == []
    reported = [code for code in batch.issues[2] if code.startswith("unexpected_field:")]
    assert reported == [f"unexpected_field:k{i}" for i in range(MAX_UNEXPECTED_FIELDS - 2)]


def test_numeric_table_column_matches_rows_of_coerced_cells() -> None:
    """The float-array column shortcut gives the very same features as rows of values."""
    schema = schema_of(
        {"name": "x", "type": "numeric", "range": [0, 5]},
        {"name": "n", "type": "integer"},
        {"name": "b", "type": "boolean"},
        {"name": "c", "type": "categorical", "categories": ["1", "2.5"]},
        {"name": "t", "type": "text"},
    )
    cells = ["1", "2.5", "", "nan", "-0", "1e20", "7", "inf", "3"]
    values = [coerce_csv_cell(cell) for cell in cells]
    floats = np.array([NAN if v is None else float(v) for v in values])
    rows = [{key: value for key in "xnbct"} for value in values]
    from_rows = compute_features(schema, rows)
    table = RawTable(len(cells), {key: RawColumn(floats) for key in "xnbct"})
    from_table = compute_table_features(schema, table)
    for name, array in from_rows.numeric.items():
        np.testing.assert_array_equal(array, from_table.numeric[name])
    assert from_rows.categorical == from_table.categorical
    assert from_rows.issues == from_table.issues
    assert from_rows.categorical["c"][4:7] == ["0", "1e+20", "7"]


def test_rows_to_table_and_back() -> None:
    rows: list[dict[str, Any]] = [{"a": 1, "b": "x"}, {"b": None}]
    table = rows_to_table(rows)
    assert list(table.columns) == ["a", "b"]
    assert table.columns["a"].values == [1, None]
    assert table.columns["a"].present is not None
    assert table.columns["a"].present.tolist() == [True, False]
    assert table.columns["b"].present is None
    assert table_to_rows(table) == rows


def test_infer_schema_types_ranges_and_nullability() -> None:
    rows: list[dict[str, Any]] = [
        {
            "age": 30 + i,
            "score": 0.5 * i,
            "flag": i % 2 == 0,
            "word": "yes" if i % 3 else "no",
            "city": ["paris", "lyon", "nice"][i % 3],
            "comment": f"free text number {i}",
            "vec": [i, i + 1],
            "meta": {"zip": str(75000 + i % 2), "deep": {"n": i}},
            "maybe": None if i == 3 else i,
            "later": "TRUE" if i % 2 else "false",
        }
        for i in range(10)
    ]
    rows[5].pop("vec")
    schema = infer_schema(rows)
    by_name = {feature.name: feature for feature in schema.features}
    assert list(by_name) == [
        "age",
        "score",
        "flag",
        "word",
        "city",
        "comment",
        "vec",
        "meta.zip",
        "meta.deep.n",
        "maybe",
        "later",
    ]
    assert (by_name["age"].type, by_name["age"].range) == ("integer", (30.0, 39.0))
    assert (by_name["score"].type, by_name["score"].range) == ("numeric", (0.0, 4.5))
    assert by_name["flag"].type == "boolean"
    assert by_name["later"].type == "boolean"
    assert (by_name["city"].type, by_name["city"].categories) == (
        "categorical",
        ("lyon", "nice", "paris"),
    )
    assert by_name["comment"].type == "text"
    assert (by_name["vec"].type, by_name["vec"].nullable) == ("array", True)
    assert by_name["meta.zip"].source == Source("selector", "meta", ("zip",))
    assert by_name["meta.zip"].categories == ("75000", "75001")
    assert by_name["meta.deep.n"].source == Source("selector", "meta", ("deep", "n"))
    assert (by_name["maybe"].type, by_name["maybe"].nullable) == ("integer", True)
    assert by_name["age"].nullable is False
    # The inferred schema reads the same rows without type issues.
    batch = compute_features(schema, rows)
    assert not any(code.startswith("type_mismatch") for row in batch.issues for code in row)


def test_inference_is_bounded() -> None:
    inference = SchemaInference(max_features=3, max_categories=4)
    rows: list[dict[str, Any]] = [
        {"a": f"v{i % 5}", "b": f"v{i % 4}", "x" * 120: 1, "c": 1, "d": 2, "e": [{"k": 1}]}
        for i in range(40)
    ]
    inference.update(rows)
    schema = inference.schema()
    assert [(f.name, f.type) for f in schema.features] == [
        ("a", "text"),  # 5 distinct values > 4 categories
        ("b", "categorical"),
        ("c", "integer"),
    ]
    assert inference.skipped_fields == ["x" * 100, "d", "e"]
    assert inference.rows_seen == 40


def test_infer_schema_without_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        infer_schema([])


def test_inference_keeps_no_value_of_a_credential_and_logs_it_hashed() -> None:
    rows = [{"password": f"pw{i % 3}", "age": 30 + i, "plan": "gold"} for i in range(20)]
    schema = infer_schema(rows)
    password = next(f for f in schema.features if f.name == "password")
    assert (password.type, password.log, password.categories) == ("categorical", "hash", None)
    assert "pw1" not in repr(schema)


def test_inference_skips_unprintable_names_and_says_when_nothing_is_usable() -> None:
    inference = SchemaInference()
    inference.update([{"a\x00b": 1, "k" * 150: 2, "big": 10**400, "nested": [["s"]]}])
    assert not inference.usable
    with pytest.raises(SchemaError, match="no field usable as a feature"):
        inference.schema("m")
    inference.update([{"age": 3}])
    assert [f.name for f in inference.schema("m").features] == ["age"]
