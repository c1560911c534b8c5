"""Per-class probabilities read from model outputs: what multiclass estimation without
labels needs of every row (issue 15). Named by the schema's classes, else "0".."n-1"
(the spelling of the baseline's `proba_<class>` columns); bounded; left out when the
output is not one probability per class."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from exporter.analysis.analyzer import Analyzer
from exporter.analysis.frames import CapturedExchange
from exporter.analysis.protocols.base import MAX_CLASSES, AdapterConfig
from exporter.analysis.records import RecordPolicy, build_records
from exporter.analysis.schemas import FeatureStage, SchemaSet
from exporter.metrics import make_metrics
from exporter.records import LogRecord
from exporter.schema import parse_schema
from exporter.settings import load
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict
from tests.unit.exporter.analysis.protocols.v2_payloads import SPEC_REQUEST

IRIS = ("setosa", "versicolor", "virginica")
V2_PATH = "/v2/models/iris/infer"
NO_CLASSES = AdapterConfig()


def _v2(*outputs: dict[str, object], config: AdapterConfig = NO_CLASSES) -> list[object]:
    response = {"model_name": "iris", "outputs": list(outputs)}
    parsed = parse_strict("v2", exchange(SPEC_REQUEST, response, path=V2_PATH), config)
    return [p.probabilities for p in parsed.predictions]


PROBA: dict[str, object] = {"name": "probabilities", "shape": [2, 3], "datatype": "FP32",
         "data": [0.1, 0.7, 0.2, 0.6, 0.3, 0.1]}  # fmt: skip


def test_v2_rows_by_n_classes_are_named_by_the_schema_classes() -> None:
    assert _v2(PROBA, config=AdapterConfig(class_names=IRIS)) == [
        {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2},
        {"setosa": 0.6, "versicolor": 0.3, "virginica": 0.1},
    ]


def test_v2_without_schema_classes_names_them_by_index() -> None:
    assert _v2(PROBA) == [{"0": 0.1, "1": 0.7, "2": 0.2}, {"0": 0.6, "1": 0.3, "2": 0.1}]


def test_v2_label_and_probability_outputs_keep_both() -> None:
    label = {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]}
    response = {"model_name": "iris", "outputs": [label, PROBA]}
    config = AdapterConfig(class_names=IRIS)
    parsed = parse_strict("v2", exchange(SPEC_REQUEST, response, path=V2_PATH), config)
    first = parsed.predictions[0]
    assert first.label == "versicolor"
    assert first.probabilities == {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2}


@pytest.mark.parametrize(
    ("data", "config"),
    [
        ([2.5, -1.0, 0.3, 0.1, 4.0, -2.0], AdapterConfig()),  # logits, not probabilities
        ([0.1, 0.7, 0.2, 0.6, 0.3, 0.1], AdapterConfig(class_names=("a", "b"))),  # 3 != 2
    ],
)
def test_outputs_that_are_not_one_probability_per_class_give_none(
    data: list[float], config: AdapterConfig
) -> None:
    tensor: dict[str, object] = {"name": "out", "shape": [2, 3], "datatype": "FP32", "data": data}
    assert _v2(tensor, config=config) == [None, None]


def test_wide_rows_without_schema_classes_are_not_kept_per_class() -> None:
    width = MAX_CLASSES + 1  # an embedding, say: its label and score stay, no columns
    tensor = {"name": "out", "shape": [1, width], "datatype": "FP32", "data": [0.01] * width}
    request = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    response = {"model_name": "iris", "outputs": [tensor]}
    parsed = parse_strict("v2", exchange(request, response, path=V2_PATH), AdapterConfig())
    assert parsed.predictions[0].score == 0.01
    assert parsed.predictions[0].probabilities is None


def test_mlflow_records_of_class_probabilities() -> None:
    response = {"predictions": [{"setosa": 0.2, "versicolor": 0.5, "virginica": 0.3}]}
    request = {"dataframe_records": [{"x": 1.0}]}
    parsed = parse_strict(
        "mlflow", exchange(request, response, path="/invocations"), AdapterConfig()
    )
    (prediction,) = parsed.predictions
    assert prediction.label == "versicolor" and prediction.score == 0.5
    assert prediction.probabilities == {"setosa": 0.2, "versicolor": 0.5, "virginica": 0.3}


def test_binary_records_give_the_positive_class_value() -> None:
    response = {"predictions": [{"yes": 0.9, "no": 0.1}]}
    request = {"dataframe_records": [{"x": 1.0}]}
    config = AdapterConfig(class_names=("no", "yes"))
    parsed = parse_strict("mlflow", exchange(request, response, path="/invocations"), config)
    (prediction,) = parsed.predictions
    assert prediction.value == 0.9 and prediction.label == "yes"
    assert prediction.probabilities == {"yes": 0.9, "no": 0.1}


def test_records_with_names_outside_the_schema_classes_are_named_outputs() -> None:
    response = {"predictions": [{"alpha": 0.2, "beta": 0.8}]}
    request = {"dataframe_records": [{"x": 1.0}]}
    config = AdapterConfig(class_names=IRIS)
    parsed = parse_strict("mlflow", exchange(request, response, path="/invocations"), config)
    assert parsed.predictions[0].probabilities is None


def test_v1_list_of_lists_and_string_labels_named_otherwise() -> None:
    request = {"instances": [[1.0], [2.0]]}
    response = {"predictions": [[0.2, 0.8], [0.6, 0.4]]}
    parsed = parse_strict(
        "v1", exchange(request, response, path="/v1/models/m:predict"), AdapterConfig()
    )
    assert [p.probabilities for p in parsed.predictions] == [
        {"0": 0.2, "1": 0.8},
        {"0": 0.6, "1": 0.4},
    ]
    # A label output naming classes the index names cannot be matched with: none kept.
    labelled = {"outputs": {"label": ["cat", "dog"], "probabilities": [[0.7, 0.3], [0.4, 0.6]]}}
    parsed = parse_strict(
        "v1",
        exchange({"inputs": {"x": [1.0, 2.0]}}, labelled, path="/v1/models/m:predict"),
        AdapterConfig(),
    )
    assert [p.label for p in parsed.predictions] == ["cat", "dog"]
    assert [p.probabilities for p in parsed.predictions] == [None, None]


def _records(schemas: SchemaSet) -> list[LogRecord]:
    settings = load(environ={"MLMON_UPSTREAM": "http://127.0.0.1:1"})
    response = {"model_name": "iris", "outputs": [PROBA]}
    headers = [(b"content-type", b"application/json")]
    captured = CapturedExchange(
        1700000000.0, "req", "POST", V2_PATH, b"", "v2", "iris", None, headers,
        json.dumps(SPEC_REQUEST).encode(), 200, headers, json.dumps(response).encode(), 0.01,
    )  # fmt: skip
    analyzer = Analyzer(settings, make_metrics(CollectorRegistry()), FeatureStage(schemas))
    return build_records(analyzer.process([captured]), schemas, {}, RecordPolicy())


def test_probabilities_reach_the_logged_record() -> None:
    records = _records(SchemaSet({}, None, b"k" * 16))
    assert [r.prediction.probabilities if r.prediction else None for r in records] == [
        {"0": 0.1, "1": 0.7, "2": 0.2},
        {"0": 0.6, "1": 0.3, "2": 0.1},
    ]
    document = records[0].to_document()
    assert document["prediction"]["probabilities"] == {"0": 0.1, "1": 0.7, "2": 0.2}


def test_the_schema_names_the_classes_the_settings_do_not() -> None:
    schema = parse_schema(
        {
            "model": "iris",
            "features": [{"name": "input1", "type": "boolean"}],
            "prediction": {"task": "multiclass", "classes": list(IRIS)},
        },
        "iris.yaml",
    )
    (first, _) = _records(SchemaSet({"iris": schema}, None, b"k" * 16))
    assert first.prediction is not None
    assert first.prediction.label == "versicolor"
    assert first.prediction.probabilities == {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2}
