"""Open Inference Protocol (KServe v2 / Triton / MLServer) adapter: responses."""

from __future__ import annotations

import math

import pytest

from exporter.analysis.protocols.base import (
    AdapterConfig,
    PayloadError,
    Prediction,
)
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict
from tests.unit.exporter.analysis.protocols.v2_payloads import SPEC_REQUEST, SPEC_RESPONSE, v2


def _outputs(*tensors: dict[str, object], **fields: object) -> dict[str, object]:
    return {"model_name": "m", "outputs": list(tensors), **fields}


def test_single_regression_output() -> None:
    response = _outputs(
        {"name": "output0", "shape": [3], "datatype": "FP32", "data": [1.5, -2.0, 0.25]}
    )
    assert [p.value for p in v2(SPEC_REQUEST, response).predictions] == [1.5, -2.0, 0.25]


def test_class_probabilities_use_configured_class_names() -> None:
    response = _outputs(
        {"name": "out", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2, 0.6, 0.3, 0.1]}
    )
    config = AdapterConfig(class_names=("setosa", "versicolor", "virginica"))
    parsed = parse_strict("v2", exchange(SPEC_REQUEST, response), config)
    assert [(p.label, p.score) for p in parsed.predictions] == [
        ("versicolor", 0.7),
        ("setosa", 0.6),
    ]


@pytest.mark.parametrize(
    ("label_name", "scores_name"),
    [
        ("label", "probabilities"),
        ("output_label", "output_probability"),
        ("predict", "predict_proba"),
    ],
)
def test_label_and_probability_outputs_are_combined(label_name: str, scores_name: str) -> None:
    response = _outputs(
        {"name": label_name, "shape": [2], "datatype": "BYTES", "data": ["cat", "dog"]},
        {"name": scores_name, "shape": [2, 2], "datatype": "FP32", "data": [0.75, 0.25, 0.1, 0.9]},
    )
    assert v2(SPEC_REQUEST, response).predictions == [
        Prediction(value=0.25, label="cat", score=0.75),
        Prediction(value=0.9, label="dog", score=0.9),
    ]


def test_integer_label_output_maps_to_class_names() -> None:
    response = _outputs(
        {
            "name": "probabilities",
            "shape": [2, 2],
            "datatype": "FP32",
            "data": [0.75, 0.25, 0.1, 0.9],
        },
        {"name": "label", "shape": [2, 1], "datatype": "INT64", "data": [0, 1]},
    )
    parsed = parse_strict(
        "v2", exchange(SPEC_REQUEST, response), AdapterConfig(class_names=("no", "yes"))
    )
    assert [p.label for p in parsed.predictions] == ["no", "yes"]


def test_unrecognised_output_names_use_the_first_output() -> None:
    response = _outputs(
        {"name": "dense_1", "shape": [2], "datatype": "FP32", "data": [3.0, 4.0]},
        {"name": "embedding", "shape": [2, 2], "datatype": "FP32", "data": [0, 0, 0, 0]},
    )
    assert [p.value for p in v2(SPEC_REQUEST, response).predictions] == [3.0, 4.0]


def test_label_and_score_outputs_with_different_row_counts_are_invalid_shape() -> None:
    response = _outputs(
        {"name": "label", "shape": [1], "datatype": "BYTES", "data": ["cat"]},
        {"name": "scores", "shape": [2], "datatype": "FP32", "data": [0.1, 0.9]},
    )
    with pytest.raises(PayloadError) as error:
        v2(SPEC_REQUEST, response)
    assert (error.value.part, error.value.reason) == ("response", "invalid_shape")


def test_non_finite_predictions_come_out_as_nan_and_inf() -> None:
    response = (
        b'{"model_name": "m", "outputs": [{"name": "y", "shape": [3], "datatype": "FP64",'
        b' "data": [NaN, Infinity, -Infinity]}]}'
    )
    values = [p.value for p in v2(SPEC_REQUEST, response).predictions]
    assert values[0] is not None and math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]


def test_numeric_model_version_becomes_text() -> None:
    parsed = v2(SPEC_REQUEST, {**SPEC_RESPONSE, "model_version": 7})
    assert parsed.model_version == "7"


@pytest.mark.parametrize("status", [400, 500, 503])
def test_error_responses_are_not_read(status: int) -> None:
    parsed = v2(SPEC_REQUEST, {"error": "model not ready"}, status=status)
    assert parsed.predictions == [] and parsed.model is None
    assert len(parsed.rows) == 2


@pytest.mark.parametrize(
    "response",
    [{"model_name": "m"}, {"outputs": {"name": "y"}}, ["outputs"], b'{"outputs": [', b""],
)
def test_bad_responses(response: object) -> None:
    with pytest.raises(PayloadError) as error:
        v2(SPEC_REQUEST, response)
    assert error.value.part == "response"
    assert error.value.reason in ("invalid_shape", "invalid_json")
