"""The feature schema: loading, validation messages, canonical form and hash."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from exporter.schema import (
    OutputColumn,
    PredictionSpec,
    SchemaError,
    Source,
    load_schema,
    parse_schema,
    schema_hash,
    schema_to_dict,
)

EXAMPLE_YAML = """\
model: credit
features:
  - name: age
    source: age
    type: integer
    nullable: false
    range: [18, 100]
  - name: income
    type: numeric
    nullable: true
    range: [0, 1000000]
  - name: city
    type: categorical
    categories: [paris, lyon, 75]
    log: hash
  - name: member
    type: boolean
    log: false
  - name: review
    type: text
    derive: [length_tokens]
  - name: image
    source: {tensor: input-0}
    type: array
  - name: pixel
    source: {tensor: input-0, index: [1, 2]}
    type: numeric
  - name: zip
    source: {selector: '$.address.zip'}
    type: categorical
prediction:
  task: binary
  classes: [no, yes]
  output: probabilities
"""


def _doc() -> dict[str, Any]:
    return {
        "features": [
            {"name": "a", "type": "numeric"},
            {"name": "b", "type": "categorical", "categories": ["x", "y"]},
            {"name": "c", "type": "text"},
        ]
    }


def test_load_schema_reads_every_field(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(EXAMPLE_YAML)
    schema = load_schema(path)
    assert schema.model == "credit"
    age, income, city, member, review, image, pixel, zip_code = schema.features
    assert (age.type, age.range, age.nullable, age.source) == (
        "integer",
        (18.0, 100.0),
        False,
        Source("column", "age"),
    )
    assert income.source == Source("column", "income")  # defaults to the name
    assert (income.nullable, income.range, income.log) == (True, (0.0, 1e6), "clear")
    assert city.categories == ("paris", "lyon", "75")
    assert city.log == "hash"
    assert member.log == "off"
    assert review.derive == ("length_tokens",)
    assert image.derive == ("size", "mean", "std", "min", "max")
    assert image.source == Source("tensor", "input-0")
    assert pixel.source == Source("tensor", "input-0", (1, 2))
    assert zip_code.source == Source("selector", "address", ("zip",))
    # PyYAML reads the bare words no/yes as booleans; class names are texts.
    assert schema.prediction == PredictionSpec(
        task="binary", classes=("false", "true"), output="probabilities", threshold=0.5
    )


def test_output_columns_and_logged_names(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(EXAMPLE_YAML)
    schema = load_schema(path)
    assert schema.output_columns() == [
        OutputColumn("age", "numeric"),
        OutputColumn("income", "numeric"),
        OutputColumn("city", "categorical"),
        OutputColumn("member", "categorical"),
        OutputColumn("review.length_tokens", "numeric"),
        OutputColumn("image.size", "numeric"),
        OutputColumn("image.mean", "numeric"),
        OutputColumn("image.std", "numeric"),
        OutputColumn("image.min", "numeric"),
        OutputColumn("image.max", "numeric"),
        OutputColumn("pixel", "numeric"),
        OutputColumn("zip", "categorical"),
    ]
    names = [name for name, _ in schema.output_columns()]
    assert schema.logged_names() == [name for name in names if name != "member"]
    assert schema.hashed_features() == ["city"]
    assert schema.read_fields() == {
        "age",
        "income",
        "city",
        "member",
        "review",
        "input-0",
        "address",
    }


def test_text_derives_both_lengths_by_default() -> None:
    schema = parse_schema(_doc(), "s.yaml")
    assert [c.name for c in schema.output_columns()] == [
        "a",
        "b",
        "c.length_chars",
        "c.length_tokens",
    ]


def test_canonical_dict_round_trips_and_hash_is_stable() -> None:
    schema = parse_schema(_doc(), "s.yaml")
    canonical = schema_to_dict(schema)
    assert canonical["features"][0] == {
        "name": "a",
        "source": "a",
        "type": "numeric",
        "nullable": False,
        "log": "clear",
    }
    assert parse_schema(canonical, "again") == schema
    # Spelling the defaults out, or reordering keys, does not change the hash.
    explicit = copy.deepcopy(canonical)
    explicit["features"][2] = dict(reversed(list(explicit["features"][2].items())))
    assert schema_hash(parse_schema(explicit, "x")) == schema_hash(schema)
    assert len(schema_hash(schema)) == 64
    changed = _doc()
    changed["features"][0]["nullable"] = True
    assert schema_hash(parse_schema(changed, "x")) != schema_hash(schema)


def test_sources_render_canonically() -> None:
    doc = {
        "features": [
            {"name": "p", "type": "numeric", "source": {"tensor": "t", "index": 3}},
            {"name": "q", "type": "numeric", "source": {"selector": '$["a.b"][0].c'}},
        ]
    }
    schema = parse_schema(doc, "s.yaml")
    assert schema.features[0].source == Source("tensor", "t", (3,))
    assert schema.features[1].source == Source("selector", "a.b", (0, "c"))
    rendered = schema_to_dict(schema)["features"]
    assert rendered[0]["source"] == {"tensor": "t", "index": 3}
    assert rendered[1]["source"] == {"selector": '$["a.b"][0].c'}


def _with_feature(**fields: Any) -> dict[str, Any]:
    doc = _doc()
    doc["features"].append({"name": "z", "type": "numeric", **fields})
    return doc


BAD_SCHEMAS = [
    pytest.param(
        _with_feature(type="flaot"),
        "features[3].type: expected one of numeric, integer, boolean, categorical, text, "
        "array; got 'flaot'",
        id="type-typo",
    ),
    pytest.param(
        {"features": [{"name": "a", "type": "numeric"}, {"name": "a", "type": "text"}]},
        "features[1].name: duplicate feature name 'a' (also features[0])",
        id="duplicate-name",
    ),
    pytest.param(
        {
            "features": [
                {"name": "r.length_chars", "type": "numeric"},
                {"name": "r", "type": "text"},
            ]
        },
        "features[1].name: duplicate output name 'r.length_chars'",
        id="derived-name-collision",
    ),
    pytest.param(
        _with_feature(colour="red", size=3),
        "features[3]: unknown key 'colour', 'size'; expected keys among name, source",
        id="unknown-feature-keys",
    ),
    pytest.param(
        {**_doc(), "extra": 1},
        "(top level): unknown key 'extra'; expected keys among model, features, prediction",
        id="unknown-top-key",
    ),
    pytest.param(
        _with_feature(range=[5, 1]),
        "features[3].range: expected min <= max; got min 5 > max 1",
        id="range-min-above-max",
    ),
    pytest.param(
        _with_feature(range=[0]),
        "features[3].range: expected [min, max] with two numbers; got a list",
        id="range-one-number",
    ),
    pytest.param(
        _with_feature(range=[0, "1.0e6"]),
        "features[3].range[1]: expected a number; got '1.0e6'",
        id="range-string-bound",
    ),
    pytest.param(
        _with_feature(type="integer", range=[0.5, 3]),
        "features[3].range: expected integer bounds for an integer feature",
        id="integer-range-fractional",
    ),
    pytest.param(
        _with_feature(type="categorical", range=[0, 1]),
        "features[3].range: a range applies to numeric and integer features, not categorical",
        id="range-on-categorical",
    ),
    pytest.param(
        _with_feature(categories=["a"]),
        "features[3].categories: categories apply to categorical features, not numeric",
        id="categories-on-numeric",
    ),
    pytest.param(
        _with_feature(type="categorical", categories=[]),
        "features[3].categories: expected a non-empty list of categories; got a list",
        id="categories-empty",
    ),
    pytest.param(
        _with_feature(type="categorical", categories=["1", 1]),
        "features[3].categories[1]: duplicate value '1'",
        id="categories-duplicate-after-rendering",
    ),
    pytest.param(
        _with_feature(type="categorical", categories=[["a"]]),
        "features[3].categories[0]: expected a string or number; got a list",
        id="categories-nested",
    ),
    pytest.param(
        _with_feature(log="secret"),
        "features[3].log: expected one of clear, hash, false; got 'secret'",
        id="log-unknown",
    ),
    pytest.param(
        _with_feature(log="hash"),
        "features[3].log: log: hash applies to categorical features, not numeric",
        id="hash-on-numeric",
    ),
    pytest.param(
        _with_feature(derive=["mean"]),
        "features[3].derive: derive applies to text and array features, not numeric",
        id="derive-on-numeric",
    ),
    pytest.param(
        _with_feature(type="array", derive=["shape"]),
        "features[3].derive[0]: expected one of size, mean, std, min, max; got 'shape'",
        id="derive-unknown",
    ),
    pytest.param(
        _with_feature(type="text", derive=["length_chars", "length_chars"]),
        "features[3].derive[1]: duplicate derive 'length_chars'",
        id="derive-duplicate",
    ),
    pytest.param(
        _with_feature(type="text", derive=[]),
        "features[3].derive: expected a non-empty list among length_chars, length_tokens",
        id="derive-empty",
    ),
    pytest.param(
        _with_feature(nullable="yes please"),
        "features[3].nullable: expected true or false; got 'yes please'",
        id="nullable-not-bool",
    ),
    pytest.param(
        {"features": [{"type": "numeric"}]},
        "features[0].name: expected a non-empty string without surrounding spaces; got null",
        id="name-missing",
    ),
    pytest.param(
        {"features": [{"name": "x" * 101, "type": "numeric"}]},
        "features[0].name: expected at most 100 printable characters",
        id="name-too-long",
    ),
    pytest.param(
        {"features": [{"name": "a"}]},
        "features[0]: missing key 'type' (expected one of numeric, integer",
        id="type-missing",
    ),
    pytest.param(
        _with_feature(source={"tensor": "t", "selector": "$.a"}),
        "features[3].source: expected exactly one of 'tensor' or 'selector'",
        id="source-both",
    ),
    pytest.param(
        _with_feature(source={"tensor": "t", "index": -1}),
        "features[3].source.index: expected a non-negative integer or a list of them; got -1",
        id="source-negative-index",
    ),
    pytest.param(
        _with_feature(source={"selector": "a.b"}),
        "features[3].source.selector: expected a selector like '$.a.b'",
        id="selector-without-dollar",
    ),
    pytest.param(
        _with_feature(source={"selector": "$[0]"}),
        "features[3].source.selector: expected a selector like",
        id="selector-starting-with-index",
    ),
    pytest.param(
        _with_feature(source={"column": "a"}),
        "features[3].source: unknown key 'column'; expected keys among tensor, index, selector",
        id="source-unknown-key",
    ),
    pytest.param(
        _with_feature(source=7),
        "features[3].source: expected a column name, {tensor: NAME, index: I} or {selector",
        id="source-number",
    ),
    pytest.param({"features": []}, "features: expected a non-empty list", id="features-empty"),
    pytest.param({"model": "m"}, "(top level): missing key 'features'", id="features-missing"),
    pytest.param(
        ["a"],
        "(top level): expected a mapping with a 'features' list; got a list",
        id="not-mapping",
    ),
    pytest.param(
        {**_doc(), "model": 3}, "model: expected a non-empty string; got 3", id="model-number"
    ),
    pytest.param(
        {**_doc(), "prediction": {"task": "ranking"}},
        "prediction.task: expected one of regression, binary, multiclass; got 'ranking'",
        id="task-unknown",
    ),
    pytest.param(
        {**_doc(), "prediction": {"task": "regression", "classes": ["a"]}},
        "prediction.classes: classes apply to binary and multiclass tasks",
        id="classes-for-regression",
    ),
    pytest.param(
        {**_doc(), "prediction": {"task": "binary", "classes": ["a", "b", "c"]}},
        "prediction.classes: expected exactly 2 classes for a binary task",
        id="binary-three-classes",
    ),
    pytest.param(
        {**_doc(), "prediction": {"task": "binary", "threshold": 1.5}},
        "prediction.threshold: expected a number between 0 and 1; got 1.5",
        id="threshold-above-one",
    ),
    pytest.param(
        {**_doc(), "prediction": {"task": "multiclass", "threshold": 0.5}},
        "prediction.threshold: a threshold applies to binary tasks, not multiclass",
        id="threshold-for-multiclass",
    ),
]


@pytest.mark.parametrize(("document", "message"), BAD_SCHEMAS)
def test_bad_schema_names_file_key_and_expectation(document: Any, message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_schema(document, "models/credit.yaml")
    text = str(caught.value)
    assert text.startswith("models/credit.yaml: ")
    assert message in text


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("features:\n  - name: a\n    type: [numeric\n")
    with pytest.raises(SchemaError, match=r"broken\.yaml: invalid YAML: .*\(line 4, column 1\)"):
        load_schema(path)


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("features:\n  - name: a\n    type: numeric\n    type: text\n")
    with pytest.raises(
        SchemaError, match=r"dup\.yaml: invalid YAML: duplicate key 'type' \(line 4"
    ):
        load_schema(path)


def test_bad_feature_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("features:\n  - {name: a, type: numeric}\n  - {name: b, type: flaot}\n")
    with pytest.raises(SchemaError) as caught:
        load_schema(path)
    assert str(caught.value) == (
        f"{path}: features[1].type: expected one of numeric, integer, boolean, categorical, "
        "text, array; got 'flaot'"
    )


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"nope\.yaml: cannot read the schema"):
        load_schema(tmp_path / "nope.yaml")
