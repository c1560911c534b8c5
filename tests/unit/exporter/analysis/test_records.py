from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from exporter.analysis.analyzer import AnalysedBatch, Analyzer
from exporter.analysis.frames import CapturedExchange
from exporter.analysis.records import (
    MAX_FIELDS,
    RecordPolicy,
    build_records,
    flatten_row,
    store_columns,
)
from exporter.analysis.schemas import FeatureStage, SchemaSet
from exporter.metrics import make_metrics
from exporter.records import PredictionValue
from exporter.schema import parse_schema
from exporter.settings import load

SETTINGS = load(environ={"MLMON_UPSTREAM": "http://127.0.0.1:1"})
KEY = b"k" * 16
SCHEMA = parse_schema(
    {
        "model": "credit",
        "features": [
            {"name": "age", "type": "integer", "range": [18, 100]},
            {"name": "email", "type": "categorical", "log": "hash"},
            {"name": "ssn", "type": "categorical", "log": False},
            {"name": "review", "type": "text", "nullable": True},
        ],
    },
    "credit.yaml",
)
SCHEMAS = SchemaSet({"credit": SCHEMA}, None, KEY)


def captured(model: str, rows: list[dict[str, object]], request_id: str = "req",
             status: int = 200) -> CapturedExchange:  # fmt: skip
    request = json.dumps({"instances": rows}).encode()
    response = json.dumps({"predictions": [0.75] * len(rows)}).encode()
    json_type = [(b"content-type", b"application/json"),
                 (b"authorization", b"Bearer secret"), (b"cookie", b"session=abc")]  # fmt: skip
    return CapturedExchange(
        1700000000.0, request_id, "POST", f"/v1/models/{model}:predict", b"", "v1", model,
        None, json_type, request, status, json_type[:1], response, 0.0125,
    )  # fmt: skip


def analyse(*items: CapturedExchange) -> AnalysedBatch:
    analyzer = Analyzer(SETTINGS, make_metrics(CollectorRegistry()), FeatureStage(SCHEMAS))
    return analyzer.process(list(items))


ROWS = [
    {"age": 30, "email": "a@x.org", "ssn": "123-45-6789", "review": "fine"},
    {"age": 150, "email": "b@y.org", "ssn": "987-65-4321", "review": None},
]


def test_one_record_per_row_with_features_issues_and_prediction() -> None:
    records = build_records(analyse(captured("credit", ROWS)), SCHEMAS, {}, RecordPolicy())
    assert [r.id for r in records] == ["req:0", "req:1"]
    first, second = records
    assert first.features["age"] == 30.0
    assert first.features["review.length_chars"] == 4.0
    assert second.features["review.length_chars"] is None
    assert second.issues == ["out_of_range:age"]
    assert first.prediction == PredictionValue(value=0.75)
    assert (first.model, first.status, first.latency_ms) == ("credit", 200, 12.5)


def test_secrets_never_reach_a_record() -> None:
    (record, _) = build_records(analyse(captured("credit", ROWS)), SCHEMAS, {}, RecordPolicy())
    text = json.dumps(record.to_document())
    assert "ssn" not in record.features  # log: false
    assert "123-45-6789" not in text
    assert "a@x.org" not in text  # log: hash: only the keyed hash
    assert isinstance(record.features["email"], str) and len(record.features["email"]) == 16
    assert "secret" not in text and "session" not in text  # no request headers at all


def test_the_layout_given_to_the_store_leaves_out_unlogged_features() -> None:
    columns = store_columns(SCHEMAS, "credit")
    assert columns is not None
    assert "ssn" not in columns.categorical
    assert "email" in columns.categorical
    assert {"age", "review.length_chars", "review.length_tokens"} <= set(columns.numeric)


def test_records_above_the_cap_keep_only_size_and_hash() -> None:
    rows: list[dict[str, object]] = [{"blob": "x" * 5000}]
    (record,) = build_records(
        analyse(captured("free", rows)), SCHEMAS, {}, RecordPolicy(record_max_bytes=1000)
    )
    assert set(record.features) == {"_size", "_sha256"}
    assert float(record.features["_size"] or 0) > 1000


def test_sampling_keeps_all_rows_of_a_request_or_none_and_always_keeps_errors() -> None:
    items = [captured("free", [{"x": 1}, {"x": 2}], request_id=f"r{i}") for i in range(400)]
    records = build_records(analyse(*items), SCHEMAS, {}, RecordPolicy(sample_rate=0.25))
    kept = {r.request_id for r in records}
    assert 60 < len(kept) < 140
    assert all(sum(r.request_id == k for r in records) == 2 for k in kept)
    failed = items[0]._replace(status=500, request_id="failed")
    assert build_records(analyse(failed), SCHEMAS, {}, RecordPolicy(sample_rate=0.0))


def test_schemaless_rows_are_flattened_boundedly() -> None:
    row = {"a": {"b": 1, "c": {"d": True}}, "t": "y" * 5000, "v": [[1, 2], [3, 4]], "n": None}
    flat = flatten_row(row, b"k" * 16)
    assert flat == {"a.b": 1.0, "a.c.d": "true", "t": "y" * 1024, "v.size": 4.0, "n": None}
    assert len(flatten_row({f"f{i}": i for i in range(1000)}, b"k" * 16)) == MAX_FIELDS
