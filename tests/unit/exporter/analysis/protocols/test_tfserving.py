"""TF-Serving / KServe v1 adapter, with the payloads of the TF-Serving REST docs."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest

from exporter.analysis.protocols.base import (
    AdapterConfig,
    ParsedExchange,
    PayloadError,
    Prediction,
)
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict

CONFIG = AdapterConfig()
PREDICTIONS = {"predictions": [[0.25, 0.75], [0.5, 0.5]]}

# "Specifying input tensors in row format" from the TF-Serving REST API docs.
ROW_FORMAT = {
    "signature_name": "serving_default",
    "instances": [
        {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
        {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
    ],
}
# The same two rows in the columnar format of the same page.
COLUMNAR_FORMAT = {
    "inputs": {
        "tag": ["foo", "bar"],
        "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
        "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
    }
}


def v1(request: object, response: object = PREDICTIONS, **kwargs: Any) -> ParsedExchange:
    path = "/v1/models/half_plus_two:predict"
    return parse_strict("v1", exchange(request, response, path=path, **kwargs), CONFIG)


def test_row_and_columnar_formats_give_the_same_rows() -> None:
    expected = ROW_FORMAT["instances"]
    assert v1(ROW_FORMAT).rows == expected
    assert v1(COLUMNAR_FORMAT).rows == expected


def test_scalar_and_list_instances_are_named_instance() -> None:
    assert v1({"instances": [1.0, 2.0, 5.0]}).rows == [
        {"instance": 1.0},
        {"instance": 2.0},
        {"instance": 5.0},
    ]
    assert v1({"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}).rows == [
        {"instance": [6.8, 2.8, 4.8, 1.4]},
        {"instance": [6.0, 3.4, 4.5, 1.6]},
    ]


def test_list_and_scalar_inputs_are_named_inputs() -> None:
    assert v1({"inputs": [[1, 2], [3, 4]]}).rows == [{"inputs": [1, 2]}, {"inputs": [3, 4]}]
    assert v1({"inputs": 7}).rows == [{"inputs": 7}]


def test_columnar_scalars_are_shared_by_every_row() -> None:
    request = {"inputs": {"x": [1, 2, 3], "threshold": 0.5}}
    assert v1(request).rows == [
        {"x": 1, "threshold": 0.5},
        {"x": 2, "threshold": 0.5},
        {"x": 3, "threshold": 0.5},
    ]
    assert v1({"inputs": {"a": 1, "b": "z"}}).rows == [{"a": 1, "b": "z"}]
    assert v1({"inputs": {}}).rows == []


def test_b64_values_become_size_markers() -> None:
    image = base64.b64encode(b"image bytes").decode()  # the docs' example value
    big = base64.b64encode(bytes(range(256)) * 40).decode()
    request = {
        "instances": [
            {"b64": image},
            {"image": {"b64": big}, "caption": "a cat", "crops": [{"b64": image}, {"b64": ""}]},
        ]
    }
    assert v1(request).rows == [
        {"instance": {"b64_bytes": 11}},
        {
            "image": {"b64_bytes": 10240},
            "caption": "a cat",
            "crops": [{"b64_bytes": 11}, {"b64_bytes": 0}],
        },
    ]
    assert v1({"inputs": {"b64": image}}).rows == [{"inputs": {"b64_bytes": 11}}]
    assert v1({"inputs": {"image": [{"b64": image}]}}).rows == [{"image": {"b64_bytes": 11}}]


def test_classify_examples_merge_the_context() -> None:
    # "Classify and Regress API" request from the docs.
    request = {
        "signature_name": "my_classify_signature",
        "context": {"country": "US", "age": 30},
        "examples": [{"type": "free"}, {"type": "paid", "age": 40}],
    }
    response = {"result": [[["spam", 0.9], ["ham", 0.1]], [["spam", 0.2], ["ham", 0.8]]]}
    parsed = parse_strict("v1", exchange(request, response, path="/v1/models/m:classify"), CONFIG)
    assert parsed.rows == [
        {"country": "US", "age": 30, "type": "free"},
        {"country": "US", "age": 40, "type": "paid"},
    ]
    assert parsed.predictions == [
        Prediction(label="spam", score=0.9, probabilities={"spam": 0.9, "ham": 0.1}),
        Prediction(label="ham", score=0.8, probabilities={"spam": 0.2, "ham": 0.8}),
    ]


def test_regress_result_values() -> None:
    parsed = v1({"examples": [{"x": 1}, {"x": 2}]}, {"result": [3.5, 4.5]})
    assert [p.value for p in parsed.predictions] == [3.5, 4.5]


@pytest.mark.parametrize(
    "request_body",
    [
        {"instances": [1], "inputs": [1]},
        {"signature_name": "serving_default"},
        {"instances": {"x": 1}},
        {"examples": [1, 2]},
        {"examples": [{"x": 1}], "context": [1]},
        {"inputs": {"x": [1, 2], "y": [1, 2, 3]}},
        [{"instances": []}],
        "instances",
    ],
)
def test_wrong_envelopes_are_invalid_shape(request_body: object) -> None:
    with pytest.raises(PayloadError) as error:
        v1(request_body)
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


def test_probability_predictions() -> None:
    parsed = v1(ROW_FORMAT, {"predictions": [[0.25, 0.75], [0.5, 0.25, 0.25]]})
    assert parsed.predictions == [
        Prediction(value=0.75, label="1", score=0.75, probabilities={"0": 0.25, "1": 0.75}),
        Prediction(
            value=None, label="0", score=0.5, probabilities={"0": 0.5, "1": 0.25, "2": 0.25}
        ),
    ]


def test_regression_predictions_with_a_binary_task() -> None:
    config = AdapterConfig(task="binary", class_names=("ham", "spam"), threshold=0.6)
    ex = exchange({"instances": [1.0, 2.0]}, {"predictions": [0.7, 0.2]})
    assert parse_strict("v1", ex, config).predictions == [
        Prediction(value=0.7, label="spam", score=0.7),
        Prediction(value=0.2, label="ham", score=0.8),
    ]


def test_multi_output_rows_use_the_class_vocabulary() -> None:
    # A TF estimator's classification outputs, one dict per row.
    response = {
        "predictions": [
            {"classes": ["cat", "dog"], "scores": [0.3, 0.7]},
            {"classes": ["cat", "dog"], "scores": [0.6, 0.4]},
        ]
    }
    assert v1(ROW_FORMAT, response).predictions == [
        Prediction(value=0.7, label="dog", score=0.7, probabilities={"cat": 0.3, "dog": 0.7}),
        Prediction(value=0.4, label="cat", score=0.6, probabilities={"cat": 0.6, "dog": 0.4}),
    ]


def test_columnar_outputs() -> None:
    response = {"outputs": {"probabilities": [[0.9, 0.1], [0.2, 0.8]], "class_ids": [[0], [1]]}}
    parsed = parse_strict(
        "v1", exchange(COLUMNAR_FORMAT, response), AdapterConfig(class_names=("a", "b"))
    )
    assert parsed.predictions == [
        Prediction(value=0.1, label="a", score=0.9, probabilities={"a": 0.9, "b": 0.1}),
        Prediction(value=0.8, label="b", score=0.8, probabilities={"a": 0.2, "b": 0.8}),
    ]
    assert [p.value for p in v1(COLUMNAR_FORMAT, {"outputs": [2.5, 3.5]}).predictions] == [2.5, 3.5]
    assert [p.value for p in v1(COLUMNAR_FORMAT, {"outputs": 2.5}).predictions] == [2.5]


def test_non_finite_predictions() -> None:
    parsed = v1(ROW_FORMAT, b'{"predictions": [NaN, [0.5, NaN], Infinity]}')
    values = [p.value for p in parsed.predictions]
    assert all(v is not None for v in values)
    assert math.isnan(values[0] or 0.0) and math.isnan(values[1] or 0.0)
    assert values[2] == math.inf


def test_error_response_is_not_read_but_rows_are_kept() -> None:
    parsed = v1(ROW_FORMAT, {"error": 'Serving signature name: "x" not found'}, status=400)
    assert parsed.predictions == [] and len(parsed.rows) == 2


@pytest.mark.parametrize("response", [{"error": "x"}, {"result": "x"}, [0.5], b"nope"])
def test_bad_responses(response: object) -> None:
    with pytest.raises(PayloadError) as error:
        v1(ROW_FORMAT, response)
    assert error.value.part == "response"
    assert error.value.reason in ("invalid_shape", "invalid_json")
