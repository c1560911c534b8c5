"""A shadow's request is its primary's, byte for byte: the analysis reads it once.

The shadow's records must be exactly those a full parse of its exchange gives, whether
its primary is in the same batch, in an earlier one, or gone (then it is parsed whole);
the request's problems are counted once; shadows' rows do not feed schema inference."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from exporter.analysis.analyzer import Analyzer
from exporter.analysis.frames import CapturedExchange
from exporter.analysis.records import RecordPolicy, build_records
from exporter.analysis.schemas import FeatureStage, SchemaSet
from exporter.metrics import make_metrics
from exporter.records import LogRecord
from exporter.schema import parse_schema
from exporter.settings import Settings, load

SCHEMA = parse_schema(
    {
        "model": "a",
        "features": [
            {"name": "x", "type": "numeric", "range": [0, 10]},
            {"name": "colour", "type": "categorical", "categories": ["red", "blue"]},
        ],
    },
    "a.yaml",
)
JSON_TYPE = [(b"content-type", b"application/json")]
ROWS = [{"x": 1.5, "colour": "red"}, {"x": 30.0, "colour": "pink"}, {"x": 4.0, "colour": "blue"}]


def settings(**environ: str) -> Settings:
    return load(
        environ={
            "MLMON_UPSTREAM": "http://127.0.0.1:1",
            "MLMON_SHADOW": "m2=http://127.0.0.1:2",
            **environ,
        }
    )


def exchange(
    request_id: str, predictions: list[float], role: str = "primary", candidate: str = ""
) -> CapturedExchange:
    request = json.dumps({"instances": ROWS}).encode()
    response = json.dumps({"predictions": predictions}).encode()
    return CapturedExchange(
        1_700_000_000.0, request_id, "POST", "/v1/models/a:predict", b"", "v1", "a", None,
        JSON_TYPE, request, 200, JSON_TYPE, response, 0.002, "", role, candidate,
    )  # fmt: skip


def primary(request_id: str) -> CapturedExchange:
    return exchange(request_id, [0.1, 0.2, 0.3])


def shadow(request_id: str) -> CapturedExchange:
    return exchange(request_id, [0.9, 0.8, 0.7], "shadow", "m2")


class Analysis:
    """The analysis process's steps for one batch at a time, with a fresh registry."""

    def __init__(self, configured: Settings, schemas: SchemaSet | None = None) -> None:
        self.registry = CollectorRegistry()
        self.schemas = schemas or SchemaSet({"a": SCHEMA}, None, None)
        self.analyzer = Analyzer(
            configured, make_metrics(self.registry), FeatureStage(self.schemas)
        )

    def records(self, *items: CapturedExchange) -> list[LogRecord]:
        batch = self.analyzer.process(list(items))
        return build_records(batch, self.schemas, self.analyzer.versions, RecordPolicy())

    def errors(self, reason: str) -> float:
        labels = {"protocol": "v1", "part": "request", "reason": reason}
        return self.registry.get_sample_value("mlmon_payload_parse_errors_total", labels) or 0.0


def shadows(records: list[LogRecord]) -> list[LogRecord]:
    return [r for r in records if r.role == "shadow"]


def test_a_shadows_records_are_those_of_a_full_parse_wherever_its_primary_is() -> None:
    alone = shadows(Analysis(settings()).records(shadow("r1")))  # no primary: parsed whole
    assert [r.id for r in alone] == ["r1:0:shadow:m2", "r1:1:shadow:m2", "r1:2:shadow:m2"]
    assert alone[1].issues == ["out_of_range:x", "unseen_category:colour"]
    assert [r.prediction.value for r in alone if r.prediction] == [0.9, 0.8, 0.7]

    analysis = Analysis(settings())
    together = analysis.records(primary("r1"), primary("r2"), shadow("r2"), shadow("r1"))
    assert shadows(together) == [*shadows(Analysis(settings()).records(shadow("r2"))), *alone]
    analysis.records(primary("r3"))
    assert shadows(analysis.records(shadow("r3"))) == shadows(
        Analysis(settings()).records(shadow("r3"))
    )
    # The primaries' records are untouched by their shadows.
    first = Analysis(settings()).records(primary("r1"), primary("r2"))
    assert [r for r in together if r.role == "primary"] == first


def test_the_shadow_reads_its_primarys_rows_and_its_own_answer() -> None:
    analysis = Analysis(settings())
    garbled = shadow("r1")._replace(request_body=b"{not json")
    records = analysis.records(primary("r1"), garbled)
    # The request it carries is not read again: the primary's rows stand for it.
    assert [r.features for r in shadows(records)] == [
        r.features for r in records if r.role == "primary"
    ]
    assert [r.prediction.value for r in shadows(records) if r.prediction] == [0.9, 0.8, 0.7]
    assert analysis.errors("invalid_json") == 0


def test_sampled_rows_are_the_primarys_sample_with_the_shadows_predictions() -> None:
    configured = settings(MLMON_MAX_ROWS_PER_REQUEST="2")
    analysis = Analysis(configured)
    records = analysis.records(primary("r1"), shadow("r1"))
    whole = shadows(Analysis(configured).records(shadow("r1")))
    assert len(whole) == 2
    assert shadows(records) == whole
    assert [r.row for r in shadows(records)] == [r.row for r in records if r.role == "primary"]


def test_a_requests_problems_are_counted_once() -> None:
    analysis = Analysis(settings())
    nan = json.dumps({"instances": ROWS}).replace("1.5", "NaN").encode()
    analysis.records(
        primary("r1")._replace(request_body=nan), shadow("r1")._replace(request_body=nan)
    )
    assert analysis.errors("non_finite_number") == 1


def test_shadows_rows_do_not_feed_schema_inference() -> None:
    analysis = Analysis(settings(), SchemaSet({}, None, None))
    # The primary of r2 was dropped before the analysis: its shadow is parsed whole.
    analysis.records(primary("r1"), shadow("r1"), shadow("r2"))
    assert analysis.analyzer.features.inferences["a"].rows_seen == len(ROWS)
