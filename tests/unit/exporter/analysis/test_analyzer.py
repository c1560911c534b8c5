from __future__ import annotations

import json

import numpy as np
from prometheus_client import CollectorRegistry

from exporter.analysis.analyzer import Analyzer
from exporter.analysis.frames import CapturedExchange
from exporter.analysis.schemas import FeatureStage, SchemaSet
from exporter.metrics import make_metrics
from exporter.schema import parse_schema
from exporter.settings import load

SETTINGS = load(environ={"MLMON_UPSTREAM": "http://127.0.0.1:1"})
SCHEMA = parse_schema(
    {"model": "a", "features": [{"name": "x", "type": "numeric", "range": [0, 10]}]}, "a.yaml"
)


def exchange(model: str, xs: list[object], status: int = 200) -> CapturedExchange:
    request = json.dumps({"instances": [{"x": x} for x in xs]}).encode()
    response = json.dumps({"predictions": [0.5] * len(xs)}).encode()
    json_type = [(b"content-type", b"application/json")]
    return CapturedExchange(
        0.0, "id", "POST", f"/v1/models/{model}:predict", b"", "v1", model, None,
        json_type, request, status, json_type, response, 0.001,
    )  # fmt: skip


def analyzer() -> tuple[Analyzer, CollectorRegistry]:
    registry = CollectorRegistry()
    stage = FeatureStage(SchemaSet({"a": SCHEMA}, None, None))
    return Analyzer(SETTINGS, make_metrics(registry), stage), registry


def test_features_are_computed_once_per_model_for_the_whole_batch() -> None:
    analysis, registry = analyzer()
    batch = analysis.process([exchange("a", [1, 2]), exchange("b", [7]), exchange("a", [30])])
    assert [(e.model, e.first_row) for e in batch.exchanges] == [("a", 0), ("b", 0), ("a", 2)]
    assert list(batch.features) == ["a"]  # model b has no schema: inferred, not computed
    np.testing.assert_array_equal(batch.features["a"].numeric["x"], [1.0, 2.0, 30.0])
    issues = registry.get_sample_value(
        "mlmon_feature_issues_total", {"model": "a", "feature": "x", "kind": "out_of_range"}
    )
    assert issues == 1
    assert "b" in analysis.features.take_inferred()


def test_an_unreadable_exchange_is_counted_and_does_not_spoil_the_batch() -> None:
    analysis, registry = analyzer()
    bad = exchange("a", [1])._replace(request_body=b"{not json")
    batch = analysis.process([bad, exchange("a", [3])])
    assert [e.first_row for e in batch.exchanges] == [0]
    np.testing.assert_array_equal(batch.features["a"].numeric["x"], [3.0])
    errors = registry.get_sample_value(
        "mlmon_payload_parse_errors_total",
        {"protocol": "v1", "part": "request", "reason": "invalid_json"},
    )
    assert errors == 1
