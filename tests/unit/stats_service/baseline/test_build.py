"""Baseline building from CSV / JSON lines, and baseline files."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.features.compute import hash_value
from exporter.schema import Schema, parse_schema, schema_hash
from stats_service.baseline.build import (
    Baseline,
    BaselineError,
    BuildProgress,
    build_baseline,
    load_baseline,
    save_baseline,
)
from stats_service.baseline.contents import CategoricalFeatureBaseline, NumericFeatureBaseline
from stats_service.baseline.files import baseline_to_dict
from stats_service.baseline.sketches import NumberReservoir, _seed

SCHEMA = parse_schema(
    {
        "model": "credit",
        "features": [
            {"name": "x", "type": "numeric", "nullable": True},
            {"name": "n", "type": "integer", "range": [0, 5]},
            {"name": "c", "type": "categorical", "categories": ["a", "b"]},
            {"name": "flag", "type": "boolean"},
        ],
        "prediction": {"task": "binary"},
    },
    "schema.yaml",
)
FIELDS = ["x", "n", "c", "flag", "score", "label"]


def make_rows(count: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        rows.append(
            {
                "x": None if i % 10 == 0 else round(float(rng.normal(50, 10)), 4),
                "n": int(rng.integers(0, 8)),
                "c": str(rng.choice(["a", "a", "b", "z"])),
                "flag": "true" if rng.random() < 0.3 else "false",
                "score": round(float(rng.random()), 3),
                "label": str(rng.integers(0, 2)),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] = FIELDS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        for row in rows:
            writer.writerow(["" if row.get(f) is None else row.get(f) for f in fields])
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    typed = [{**row, "flag": row["flag"] == "true"} for row in rows]
    path.write_text("".join(json.dumps(row) + "\n" for row in typed), encoding="utf-8")
    return path


def comparable(baseline: Baseline) -> dict[str, Any]:
    """Everything but the time and file; mean and std to 12 significant digits, as
    merging chunk moments may change their last bits with the chunk size."""
    document = baseline_to_dict(baseline)
    document.pop("created_at")
    document.pop("data")
    for feature in document["features"]:
        for key in ("mean", "std"):
            if feature.get(key) is not None:
                feature[key] = float(f"{feature[key]:.12g}")
    return document


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return make_rows(3000)


@pytest.fixture
def train_csv(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    return write_csv(tmp_path / "train.csv", rows)


def test_numeric_feature_matches_numpy(train_csv: Path, rows: list[dict[str, Any]]) -> None:
    baseline = build_baseline(SCHEMA, train_csv, bins=10, sample_size=500)
    x = baseline.feature("x")
    assert isinstance(x, NumericFeatureBaseline)
    data = np.array([r["x"] for r in rows if r["x"] is not None])
    interior = np.quantile(data, np.linspace(0, 1, 11)[1:-1])
    assert x.edges == (-math.inf, *interior.tolist(), math.inf)
    counts = np.histogram(data, bins=[-np.inf, *interior.tolist(), np.inf])[0]
    assert x.proportions == pytest.approx((counts / len(data)).tolist(), abs=1 / len(data))
    assert (x.count, x.missing_count) == (2700, 300)
    assert x.missing_rate == pytest.approx(0.1)
    assert x.minimum == data.min()
    assert x.maximum == data.max()
    assert x.mean == pytest.approx(data.mean(), rel=1e-12)
    assert x.std == pytest.approx(data.std(), rel=1e-12)
    assert len(x.sample) == 500
    assert set(x.sample) <= set(data.tolist())


def test_integer_ties_collapse_edges(train_csv: Path, rows: list[dict[str, Any]]) -> None:
    baseline = build_baseline(SCHEMA, train_csv, bins=20)
    n = baseline.feature("n")
    assert isinstance(n, NumericFeatureBaseline)
    data = np.array([r["n"] for r in rows], dtype=float)
    interior = np.unique(np.quantile(data, np.linspace(0, 1, 21)[1:-1]))
    assert n.edges == (-math.inf, *interior.tolist(), math.inf)
    assert len(n.proportions) == len(n.edges) - 1 < 20
    assert sum(n.proportions) == pytest.approx(1.0)
    assert baseline.issue_counts["out_of_range:n"] == int((data > 5).sum())


def test_categorical_and_boolean_features(train_csv: Path, rows: list[dict[str, Any]]) -> None:
    baseline = build_baseline(SCHEMA, train_csv, sample_size=100)
    c = baseline.feature("c")
    assert isinstance(c, CategoricalFeatureBaseline)
    total = len(rows)
    counts = {v: sum(r["c"] == v for r in rows) for v in ("a", "b", "z")}
    assert c.categories == tuple(sorted(counts, key=lambda v: (-counts[v], v)))
    assert dict(zip(c.categories, c.proportions, strict=True)) == pytest.approx(
        {v: counts[v] / total for v in counts}
    )
    assert (c.other_proportion, c.unseen_proportion, c.missing_count) == (0.0, 0.0, 0)
    assert len(c.sample) == 100
    assert set(c.sample) <= {"a", "b", "z"}
    assert baseline.issue_counts["unseen_category:c"] == counts["z"]
    flag = baseline.feature("flag")
    assert isinstance(flag, CategoricalFeatureBaseline)
    assert set(flag.categories) == {"true", "false"}


def test_metadata_and_hashes(train_csv: Path) -> None:
    baseline = build_baseline(SCHEMA, train_csv)
    assert baseline.data.sha256 == hashlib.sha256(train_csv.read_bytes()).hexdigest()
    assert (baseline.data.rows, baseline.data.path) == (3000, str(train_csv))
    assert baseline.schema == SCHEMA
    assert baseline.schema_hash == schema_hash(SCHEMA)
    assert baseline.format_version == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", baseline.created_at)
    assert baseline.thresholds is None
    # score and label are not read by the schema: each row reports them.
    assert baseline.issue_counts["unexpected_field:score"] == 3000
    assert baseline.issue_counts["unexpected_field:label"] == 3000


def test_streaming_in_small_chunks_gives_the_same_baseline(train_csv: Path) -> None:
    whole = build_baseline(SCHEMA, train_csv, chunk_rows=100_000, sample_size=200)
    seen: list[BuildProgress] = []
    chunked = build_baseline(SCHEMA, train_csv, chunk_rows=7, sample_size=200, progress=seen.append)
    assert comparable(chunked) == comparable(whole)
    assert len(seen) == math.ceil(3000 / 7)
    assert [p.rows for p in seen[:3]] == [7, 14, 21]
    assert seen[-1] == BuildProgress(3000, train_csv.stat().st_size, train_csv.stat().st_size)


def test_baseline_is_deterministic(train_csv: Path) -> None:
    assert comparable(build_baseline(SCHEMA, train_csv)) == comparable(
        build_baseline(SCHEMA, train_csv)
    )


def test_row_sample_holds_whole_numeric_rows(train_csv: Path, rows: list[dict[str, Any]]) -> None:
    baseline = build_baseline(SCHEMA, train_csv, sample_size=50)
    sample = baseline.row_sample
    assert sample.columns == ("x", "n")
    matrix = sample.matrix()
    assert matrix.shape == (50, 2)
    data = {(r["x"], float(r["n"])) for r in rows}
    for x, n in matrix.tolist():
        assert ((None if math.isnan(x) else x), n) in data


def test_reservoir_equals_sequential_algorithm_r() -> None:
    values = np.arange(10_000, dtype=float)
    reservoir = NumberReservoir(100, "test")
    rng = np.random.default_rng(0)
    start = 0
    while start < len(values):
        size = int(rng.integers(1, 700))
        reservoir.add(values[start : start + size])
        start += size
    reference = np.random.default_rng(_seed("test"))
    expected = list(values[:100])
    for t in range(100, len(values)):
        slot = math.floor(reference.random() * (t + 1))
        if slot < 100:
            expected[slot] = values[t]
    assert reservoir.values().tolist() == expected
    small = NumberReservoir(100, "test")
    small.add(values[:30])
    assert small.values().tolist() == values[:30].tolist()


def test_jsonl_gives_the_csv_baseline(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    from_csv = build_baseline(SCHEMA, write_csv(tmp_path / "t.csv", rows), chunk_rows=500)
    from_jsonl = build_baseline(SCHEMA, write_jsonl(tmp_path / "t.ndjson", rows), chunk_rows=500)
    assert comparable(from_jsonl) == comparable(from_csv)


def test_prediction_and_label_columns(train_csv: Path, rows: list[dict[str, Any]]) -> None:
    baseline = build_baseline(
        SCHEMA, train_csv, prediction_column="score", label_column="label", sample_size=10
    )
    assert isinstance(baseline.prediction, NumericFeatureBaseline)
    assert baseline.prediction.name == "score"
    assert baseline.prediction.mean == pytest.approx(np.mean([r["score"] for r in rows]))
    # binary task: the label is a class, even when written as 0/1
    assert isinstance(baseline.label, CategoricalFeatureBaseline)
    assert set(baseline.label.categories) == {"0", "1"}
    assert not any("score" in code or "label" in code for code in baseline.issue_counts)
    with pytest.raises(BaselineError, match="prediction column 'proba' is not in the data"):
        build_baseline(SCHEMA, train_csv, prediction_column="proba")


def test_regression_label_is_numeric(train_csv: Path) -> None:
    schema = parse_schema(
        {
            "features": [{"name": "x", "type": "numeric", "nullable": True}],
            "prediction": {"task": "regression"},
        },
        "s.yaml",
    )
    baseline = build_baseline(schema, train_csv, label_column="label")
    assert isinstance(baseline.label, NumericFeatureBaseline)


def test_constant_and_empty_features(tmp_path: Path) -> None:
    schema = parse_schema(
        {
            "features": [
                {"name": "k", "type": "numeric"},
                {"name": "e", "type": "numeric", "nullable": True},
                {"name": "s", "type": "categorical", "nullable": True},
            ]
        },
        "s.yaml",
    )
    path = tmp_path / "t.csv"
    path.write_text("k,e,s\n" + "4,,\n" * 20)
    baseline = build_baseline(schema, path)
    k, e, s = baseline.features
    assert isinstance(k, NumericFeatureBaseline)
    assert isinstance(e, NumericFeatureBaseline)
    assert isinstance(s, CategoricalFeatureBaseline)
    assert (k.edges, k.proportions, k.std) == ((-math.inf, 4.0, math.inf), (0.0, 1.0), 0.0)
    assert (e.count, e.missing_count, e.edges, e.proportions, e.mean) == (
        0,
        20,
        (-math.inf, math.inf),
        (0.0,),
        None,
    )
    assert (s.count, s.categories, s.other_proportion) == (0, (), 0.0)
    save_baseline(baseline, tmp_path / "b.json")
    assert comparable(load_baseline(tmp_path / "b.json")) == comparable(baseline)


def test_hashed_feature_keeps_only_hashes(train_csv: Path) -> None:
    schema = parse_schema(
        {"features": [{"name": "c", "type": "categorical", "log": "hash"}]}, "s.yaml"
    )
    baseline = build_baseline(schema, train_csv, hash_key=b"secret")
    c = baseline.feature("c")
    assert isinstance(c, CategoricalFeatureBaseline)
    assert set(c.categories) == {hash_value(b"secret", v) for v in "abz"}
    assert set(c.sample) <= set(c.categories)
    with pytest.raises(ValueError, match="hash key is required"):
        build_baseline(schema, train_csv)


def test_csv_dialect_details(tmp_path: Path) -> None:
    schema = parse_schema(
        {
            "features": [
                {"name": "a", "type": "numeric"},
                {"name": "b", "type": "categorical"},
                {"name": "t", "type": "text", "derive": ["length_chars"]},
            ]
        },
        "s.yaml",
    )
    path = tmp_path / "t.csv"
    text = '\ufeffa,b,t\r\n1,"x,y","two\nlines"\r\n\r\n2,"say ""hi""",plain\r\n3,z\r\n4,w,last'
    path.write_bytes(text.encode("utf-8"))
    baseline = build_baseline(schema, path)
    b = baseline.feature("b")
    assert isinstance(b, CategoricalFeatureBaseline)
    assert set(b.categories) == {"x,y", 'say "hi"', "z", "w"}
    t = baseline.feature("t.length_chars")
    assert isinstance(t, NumericFeatureBaseline)
    assert (t.minimum, t.maximum, t.count) == (4.0, 9.0, 3)
    assert baseline.data.rows == 4
    assert baseline.issue_counts == {"missing_field:t": 1}


def test_csv_row_longer_than_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(BaselineError, match=r"t\.csv: data row 2: expected at most 2 fields"):
        build_baseline(SCHEMA, path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.txt", "a\n1\n", r"t\.txt: unsupported data file; expected a name ending in \.csv"),
        ("t.csv", "", r"t\.csv: no header line"),
        ("t.csv", "x,n,c,flag\n", r"t\.csv: no data rows"),
        ("t.csv", "x,x\n1,2\n", r"t\.csv: header: duplicate column 'x'"),
        ("t.jsonl", '{"x": 1}\n[1, 2]\n', r"t\.jsonl: line 2: expected a JSON object; got a list"),
        ("t.jsonl", '{"x": 1}\n\n{"x": \n', r"t\.jsonl: line 3: invalid JSON"),
    ],
)
def test_bad_data_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BaselineError, match=message):
        build_baseline(SCHEMA, path)


def test_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"nope\.csv: data file not found"):
        build_baseline(SCHEMA, tmp_path / "nope.csv")


# --- baseline files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("baseline")
    data = write_csv(directory / "train.csv", make_rows(400))
    baseline = build_baseline(SCHEMA, data, prediction_column="score", sample_size=30)
    path = directory / "baseline.json"
    save_baseline(baseline, path)
    return path, json.loads(path.read_text())


def test_saved_file_is_readable_json(saved: tuple[Path, dict[str, Any]]) -> None:
    path, document = saved
    text = path.read_text()
    assert text == json.dumps(document, indent=1, sort_keys=True) + "\n"
    assert "NaN" not in text
    assert "Infinity" not in text
    x = document["features"][0]
    assert (x["edges"][0], x["edges"][-1]) == ("-inf", "+inf")
    assert document["thresholds"] is None
    assert any(value is None for row in document["row_sample"]["rows"] for value in row)


def test_load_round_trip(saved: tuple[Path, dict[str, Any]]) -> None:
    path, document = saved
    loaded = load_baseline(path, SCHEMA)
    assert baseline_to_dict(loaded) == document
    assert loaded.feature("x").edges[0] == -math.inf  # type: ignore[union-attr]
    assert loaded.prediction is not None and loaded.prediction.name == "score"


def _mutate(document: dict[str, Any], change: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(document)
    change(mutated)
    return mutated


BAD_BASELINES = [
    (lambda d: d["features"][0].pop("edges"), "features[0].edges: missing key"),
    (lambda d: d.pop("schema_hash"), "schema_hash: missing key"),
    (
        lambda d: d.update(format_version=99),
        "format_version: expected 1 (the version this mlmon reads); got 99",
    ),
    (lambda d: d.update(format="other"), "format: expected 'mlmon-baseline'; got 'other'"),
    (
        lambda d: d["features"][0]["edges"].reverse(),
        'features[0].edges: expected a list from "-inf" to "+inf"',
    ),
    (
        lambda d: d["features"][0]["edges"].__setitem__(2, -1e9),
        "features[0].edges: expected strictly increasing edges",
    ),
    (
        lambda d: d["features"][0]["edges"].__setitem__(1, "x"),
        "features[0].edges[1]: expected a finite number; got 'x'",
    ),
    (
        lambda d: d["features"][0]["proportions"].__setitem__(0, 0.5),
        "features[0].proportions: expected 10 shares (one per bin) summing to 1; "
        "got 10 shares summing to 1.4",
    ),
    (
        lambda d: d["features"][2]["proportions"].__setitem__(0, 0.9),
        "features[2].proportions: expected 3 shares (one per category) that, with "
        "other_proportion and unseen_proportion, sum to 1; got 3 shares summing to",
    ),
    (
        lambda d: d["features"][0].update(count=-1),
        "features[0].count: expected a non-negative integer; got -1",
    ),
    (
        lambda d: d["features"][0].update(mean=None),
        "features[0].mean: expected a finite number; got null",
    ),
    (
        lambda d: d["features"][1].update(kind="ordinal"),
        "features[1].kind: expected numeric or categorical; got 'ordinal'",
    ),
    (
        lambda d: d["features"].pop(),
        "features: expected the schema's output columns [('x', 'numeric'), ('n', 'numeric'), "
        "('c', 'categorical'), ('flag', 'categorical')]",
    ),
    (
        lambda d: d["schema"]["features"][0].update(nullable=False),
        "schema_hash: expected the hash of the embedded schema",
    ),
    (
        lambda d: d["schema"]["features"][0].update(type="flaot"),
        "schema: features[0].type: expected one of numeric",
    ),
    (lambda d: d["row_sample"]["rows"][0].pop(), "row_sample.rows[0]: expected 2 values; got 1"),
    (
        lambda d: d["features"][0]["sample"].extend([1.0] * 40),
        "features[0].sample: expected at most sample_size (30) values; got 70",
    ),
    (lambda d: d.update(thresholds={"psi": 0.2}), "thresholds: expected null"),
    (
        lambda d: d.update(created_at="yesterday"),
        "created_at: expected an ISO 8601 time; got 'yesterday'",
    ),
    (
        lambda d: d["data"].update(sha256="abc"),
        "data.sha256: expected 64 lowercase hex digits; got 'abc'",
    ),
    (
        lambda d: d["issue_counts"].update(x="many"),
        "issue_counts['x']: expected a non-negative integer",
    ),
    (lambda d: d.update(prediction=[]), "prediction: expected a mapping; got a list"),
]


@pytest.mark.parametrize(("change", "message"), BAD_BASELINES)
def test_bad_baseline_file(
    tmp_path: Path, saved: tuple[Path, dict[str, Any]], change: Any, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_mutate(saved[1], change)))
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_nan_in_a_baseline_file(tmp_path: Path, saved: tuple[Path, dict[str, Any]]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(saved[0].read_text().replace('"mean": ', '"mean": NaN, "was": ', 1))
    with pytest.raises(
        BaselineError, match=r"features\[0\]\.mean: expected a finite number; got nan"
    ):
        load_baseline(path)


def test_truncated_baseline_file(tmp_path: Path, saved: tuple[Path, dict[str, Any]]) -> None:
    path = tmp_path / "cut.json"
    text = saved[0].read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(
        BaselineError, match=r"cut\.json: invalid JSON \(truncated or corrupted\?\)"
    ):
        load_baseline(path)


def test_schema_hash_mismatch_names_both_hashes(saved: tuple[Path, dict[str, Any]]) -> None:
    path, document = saved
    running = parse_schema({"features": [{"name": "x", "type": "numeric"}]}, "running.yaml")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path, running)
    message = str(caught.value)
    assert document["schema_hash"] in message
    assert schema_hash(running) in message
    assert "rebuild the baseline" in message


def test_missing_baseline_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"none\.json: baseline file not found"):
        load_baseline(tmp_path / "none.json")


def test_schema_type_is_exported() -> None:
    assert isinstance(SCHEMA, Schema)
