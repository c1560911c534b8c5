"""Seldon Core v1 adapter, with SeldonMessage payloads from the Seldon docs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter.analysis.protocols.base import (
    AdapterConfig,
    ParsedExchange,
    PayloadError,
    Prediction,
    TensorInfo,
)
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict

CONFIG = AdapterConfig()
# The sklearn iris example's answer: class probabilities named t:0..t:2.
IRIS_RESPONSE = {
    "meta": {"requestPath": {"classifier": "seldonio/sklearn-iris:0.1"}},
    "data": {
        "names": ["t:0", "t:1", "t:2"],
        "ndarray": [[0.9548, 0.0451, 0.00005], [0.0012, 0.2, 0.7988]],
    },
}
IRIS_REQUEST = {
    "data": {
        "names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "ndarray": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]],
    }
}
IRIS_ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},
]


def seldon(request: object, response: object = IRIS_RESPONSE, **kw: Any) -> ParsedExchange:
    ex = exchange(request, response, path="/api/v1.0/predictions", **kw)
    return parse_strict("seldon", ex, CONFIG)


def test_ndarray_with_names_and_class_probabilities() -> None:
    parsed = seldon(IRIS_REQUEST)
    assert parsed.rows == IRIS_ROWS
    assert parsed.predictions == [
        Prediction(
            label="t:0", score=0.9548, probabilities={"t:0": 0.9548, "t:1": 0.0451, "t:2": 5e-05}
        ),
        Prediction(
            label="t:2", score=0.7988, probabilities={"t:0": 0.0012, "t:1": 0.2, "t:2": 0.7988}
        ),
    ]


def test_tensor_is_reshaped() -> None:
    request = {
        "data": {
            "names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "tensor": {"shape": [2, 4], "values": [5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5]},
        }
    }
    assert seldon(request).rows == IRIS_ROWS


def test_without_names_columns_are_numbered() -> None:
    request = {"data": {"ndarray": [[1, 2], [3, 4]]}}
    assert seldon(request).rows == [{"0": 1, "1": 2}, {"0": 3, "1": 4}]
    # Text models: one string per row.
    assert seldon({"data": {"ndarray": ["hello world", "bye"]}}).rows == [
        {"0": "hello world"},
        {"0": "bye"},
    ]
    assert seldon({"data": {"names": ["text"], "ndarray": ["hi"]}}).rows == [{"text": "hi"}]


def test_json_str_and_bin_data() -> None:
    assert seldon({"jsonData": {"user": "u1", "items": [1, 2]}}).rows == [
        {"user": "u1", "items": [1, 2]}
    ]
    assert seldon({"jsonData": [1, 2]}).rows == [{"jsonData": [1, 2]}]
    assert seldon({"strData": "The quick brown fox"}).rows == [{"strData": "The quick brown fox"}]
    parsed = seldon({"binData": "AAECAwQFBgc=", "meta": {"tags": {"a": 1}}})
    assert parsed.rows == []
    assert parsed.tensors == [TensorInfo("binData", (8,), "BYTES")]


def test_tftensor_is_reported_by_shape() -> None:
    request = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "2"}, {"size": "3"}]},
                "floatVal": [1, 2, 3, 4, 5, 6],
            }
        }
    }
    parsed = seldon(request)
    assert parsed.rows == []
    assert parsed.tensors == [TensorInfo("tftensor", (2, 3), "DT_FLOAT")]


@pytest.mark.parametrize(
    "request_body",
    [
        {"meta": {}},
        {"data": [[1, 2]]},
        {"data": {"names": ["a", "b"], "ndarray": [[1, 2, 3]]}},
        {"data": {"names": "a", "ndarray": [[1]]}},
        {"data": {"names": ["a"]}},
        {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}},
        {"data": {"tensor": {"shape": [2], "values": "12"}}},
        {"data": {"tftensor": {"tensorShape": {"dim": [{"size": "x"}]}}}},
        {"data": {"tftensor": {"tensorShape": [1]}}},
        {"binData": 12},
        [IRIS_REQUEST],
    ],
)
def test_wrong_envelopes_are_invalid_shape(request_body: object) -> None:
    with pytest.raises(PayloadError) as error:
        seldon(request_body)
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


def test_response_without_names_uses_configured_class_names() -> None:
    response = {"data": {"ndarray": [[0.2, 0.8]]}}
    ex = exchange(IRIS_REQUEST, response)
    parsed = parse_strict("seldon", ex, AdapterConfig(class_names=("ok", "fraud")))
    assert parsed.predictions == [
        Prediction(value=0.8, label="fraud", score=0.8, probabilities={"ok": 0.2, "fraud": 0.8})
    ]


def test_regression_response_with_one_name() -> None:
    response = {"data": {"names": ["price"], "tensor": {"shape": [2, 1], "values": [210.5, 99.0]}}}
    assert [p.value for p in seldon(IRIS_REQUEST, response).predictions] == [210.5, 99.0]


def test_json_data_response_is_read_as_named_outputs() -> None:
    # From a Seldon issue: a model answering jsonData with its probabilities.
    response = {"jsonData": {"my_predictions": [[3.9e-18, 4.1e-09, 0.99999]]}, "meta": {}}
    parsed = seldon({"jsonData": {"ndarray": [[4.098, 2.128, 9.715, 2.977]]}}, response)
    assert parsed.predictions == [
        Prediction(
            label="2", score=0.99999, probabilities={"0": 3.9e-18, "1": 4.1e-09, "2": 0.99999}
        )
    ]


def test_str_data_response_gives_no_prediction() -> None:
    assert seldon({"strData": "hi"}, {"strData": "bonjour"}).predictions == []


def test_bin_data_response_is_a_tensor() -> None:
    parsed = seldon({"strData": "hi"}, {"binData": "AAAA"})
    assert parsed.tensors == [TensorInfo("binData", (3,), "BYTES")]


def test_non_finite_probabilities() -> None:
    response = b'{"data": {"names": ["a", "b"], "ndarray": [[NaN, 0.5], [0.25, 0.75]]}}'
    predictions = seldon(IRIS_REQUEST, response).predictions
    assert math.isnan(predictions[0].value or 0.0)
    assert predictions[1] == Prediction(
        value=0.75, label="b", score=0.75, probabilities={"a": 0.25, "b": 0.75}
    )


def test_failure_status_response_is_not_read() -> None:
    failure = {
        "status": {"code": -1, "info": "boom", "reason": "MICROSERVICE_INTERNAL_ERROR", "status": 1}
    }
    parsed = seldon(IRIS_REQUEST, failure, status=500)
    assert parsed.rows == IRIS_ROWS and parsed.predictions == []


@pytest.mark.parametrize("response", [{"status": {"code": 200}}, {"data": 1}, b"\x00\x01"])
def test_bad_responses(response: object) -> None:
    with pytest.raises(PayloadError) as error:
        seldon(IRIS_REQUEST, response)
    assert error.value.part == "response"
