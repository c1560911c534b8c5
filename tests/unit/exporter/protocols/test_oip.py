"""Open Inference Protocol (KServe v2 / Triton / MLServer) adapter."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from exporter.protocols import parse
from exporter.protocols.base import AdapterConfig, PayloadError, Prediction, TensorInfo
from tests.unit.exporter.protocols.helpers import exchange

CONFIG = AdapterConfig()

# The request of the KServe v2 spec's example, with input1's shape corrected
# to match its data (the spec has shape [3] for one value).
SPEC_REQUEST = {
    "id": "42",
    "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ],
    "outputs": [{"name": "output0"}],
}
SPEC_RESPONSE = {
    "model_name": "mymodel",
    "model_version": "1",
    "id": "42",
    "outputs": [
        {"name": "output0", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]}
    ],
}


def v2(request: object, response: object = b"", **kwargs: object):
    return parse("v2", exchange(request, response, path="/v2/models/mymodel/infer", **kwargs), CONFIG)


def test_spec_example_rows_and_predictions() -> None:
    parsed = v2(SPEC_REQUEST, SPEC_RESPONSE)
    assert parsed.protocol == "v2"
    assert parsed.rows == [{"input0": [1, 2], "input1": True}, {"input0": [3, 4], "input1": False}]
    assert parsed.predictions == [
        Prediction(value=0.1, label="0", score=0.9),
        Prediction(value=0.8, label="1", score=0.8),
    ]
    assert (parsed.model, parsed.model_version) == ("mymodel", "1")
    assert parsed.tensors == []


def test_spec_example_as_published_is_a_shape_mismatch() -> None:
    published = json.loads(json.dumps(SPEC_REQUEST))
    published["inputs"][1] = {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]}
    with pytest.raises(PayloadError) as error:
        v2(published, SPEC_RESPONSE)
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


def test_nested_data_gives_the_same_rows_as_flat_data() -> None:
    nested = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}
    assert v2(nested, SPEC_RESPONSE).rows == [{"x": [1, 2]}, {"x": [3, 4]}]


def test_three_dimensional_tensor_rows_are_nested_lists() -> None:
    request = {
        "inputs": [{"name": "img", "shape": [2, 2, 3], "datatype": "INT32", "data": list(range(12))}]
    }
    assert v2(request, SPEC_RESPONSE).rows == [
        {"img": [[0, 1, 2], [3, 4, 5]]},
        {"img": [[6, 7, 8], [9, 10, 11]]},
    ]


def test_bytes_inputs_stay_strings_and_n_by_1_stays_a_list_without_pd() -> None:
    request = {
        "inputs": [
            {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "world"]},
            {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [31, 47]},
        ]
    }
    assert v2(request, SPEC_RESPONSE).rows == [
        {"text": "hello", "age": [31]},
        {"text": "world", "age": [47]},
    ]


@pytest.mark.parametrize("where", ["request", "input"])
def test_pandas_content_type_makes_each_input_a_column(where: str) -> None:
    # MLServer's pandas codec: one input per dataframe column.
    inputs = [
        {"name": "sepal_length", "shape": [3, 1], "datatype": "FP64", "data": [5.1, 4.9, 6.2]},
        {"name": "species", "shape": [3], "datatype": "BYTES", "data": ["setosa", "setosa", "virginica"]},
        {"name": "petal", "shape": [3, 1], "datatype": "FP64", "data": [[1.4], [1.3], [5.4]]},
    ]
    request: dict[str, object] = {"inputs": inputs}
    if where == "request":
        request["parameters"] = {"content_type": "pd"}
    else:
        for tensor in inputs:
            tensor["parameters"] = {"content_type": "pd"}
    assert v2(request, SPEC_RESPONSE).rows == [
        {"sepal_length": 5.1, "species": "setosa", "petal": 1.4},
        {"sepal_length": 4.9, "species": "setosa", "petal": 1.3},
        {"sepal_length": 6.2, "species": "virginica", "petal": 5.4},
    ]


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]},  # too few values
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]},  # ragged
        {"name": "x", "shape": [2], "datatype": "FP32", "data": [[1], [2]]},  # deeper than shape
        {"name": "x", "shape": [2, -1], "datatype": "FP32", "data": [1, 2]},
        {"name": "x", "shape": [True], "datatype": "FP32", "data": [1]},
        {"name": "x", "shape": "2", "datatype": "FP32", "data": [1, 2]},
        {"name": "x", "shape": [2], "datatype": "FP32"},  # no data, no binary header
        {"name": "x", "shape": [2], "datatype": "FP32", "data": 3},
        {"shape": [1], "datatype": "FP32", "data": [1]},  # no name
    ],
)
def test_malformed_tensors_are_invalid_shape(tensor: dict[str, object]) -> None:
    with pytest.raises(PayloadError) as error:
        v2({"inputs": [tensor]}, SPEC_RESPONSE)
    assert error.value.reason == "invalid_shape"


@pytest.mark.parametrize(
    "request_body",
    [
        [SPEC_REQUEST],
        {"inputs": {"name": "x"}},
        {"inputs": ["x"]},
        {"instances": [[1, 2]]},
        {
            "inputs": [
                {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]},
                {"name": "b", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
            ]
        },
    ],
)
def test_wrong_envelopes_are_invalid_shape(request_body: object) -> None:
    with pytest.raises(PayloadError) as error:
        v2(request_body, SPEC_RESPONSE)
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


def _triton_body(header: dict[str, object], tail: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }
    return head + tail, headers


def test_triton_binary_request_reports_shapes_and_never_reads_the_tail() -> None:
    # Triton's binary tensor extension example: UINT32 [2, 2] and BOOL [3].
    tail = struct.pack("<4I", 1, 2, 3, 4) + bytes([1, 0, 1])
    header = {
        "model_name": "mymodel",
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "parameters": {"binary_data_size": 16}},
            {"name": "input1", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}},
        ],
        "outputs": [{"name": "output0", "parameters": {"binary_data": True}}],
    }
    request, headers = _triton_body(header, tail)
    parsed = v2(request, SPEC_RESPONSE, request_headers=headers)
    assert parsed.rows == []
    assert parsed.tensors == [
        TensorInfo("input0", (2, 2), "UINT32"),
        TensorInfo("input1", (3,), "BOOL"),
    ]
    assert len(parsed.predictions) == 2  # the JSON response is still read


def test_triton_binary_response_reports_output_shapes() -> None:
    tail = np.arange(12, dtype="<f4").tobytes()
    header = {
        "model_name": "mymodel",
        "model_version": "3",
        "outputs": [
            {"name": "output0", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": 48}}
        ],
    }
    response, headers = _triton_body(header, tail)
    parsed = v2(SPEC_REQUEST, response, response_headers=headers)
    assert parsed.tensors == [TensorInfo("output0", (3, 4), "FP32")]
    assert parsed.predictions == []
    assert (parsed.model, parsed.model_version) == ("mymodel", "3")
    assert len(parsed.rows) == 2


@pytest.mark.parametrize("length", ["abc", "0", "-5", "100000"])
def test_bad_binary_header_length_is_invalid_shape(length: str) -> None:
    request, headers = _triton_body({"inputs": []}, b"\x00" * 8)
    headers["inference-header-content-length"] = length
    with pytest.raises(PayloadError) as error:
        v2(request, SPEC_RESPONSE, request_headers=headers)
    assert error.value.reason == "invalid_shape"


def _outputs(*tensors: dict[str, object], **fields: object) -> dict[str, object]:
    return {"model_name": "m", "outputs": list(tensors), **fields}


def test_single_regression_output() -> None:
    response = _outputs({"name": "output0", "shape": [3], "datatype": "FP32", "data": [1.5, -2.0, 0.25]})
    assert [p.value for p in v2(SPEC_REQUEST, response).predictions] == [1.5, -2.0, 0.25]


def test_class_probabilities_use_configured_class_names() -> None:
    response = _outputs(
        {"name": "out", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2, 0.6, 0.3, 0.1]}
    )
    config = AdapterConfig(class_names=("setosa", "versicolor", "virginica"))
    parsed = parse("v2", exchange(SPEC_REQUEST, response), config)
    assert [(p.label, p.score) for p in parsed.predictions] == [("versicolor", 0.7), ("setosa", 0.6)]


@pytest.mark.parametrize(
    ("label_name", "scores_name"),
    [("label", "probabilities"), ("output_label", "output_probability"), ("predict", "predict_proba")],
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
        {"name": "probabilities", "shape": [2, 2], "datatype": "FP32", "data": [0.75, 0.25, 0.1, 0.9]},
        {"name": "label", "shape": [2, 1], "datatype": "INT64", "data": [0, 1]},
    )
    parsed = parse("v2", exchange(SPEC_REQUEST, response), AdapterConfig(class_names=("no", "yes")))
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
