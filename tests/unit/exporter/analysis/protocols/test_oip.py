"""Open Inference Protocol (KServe v2 / Triton / MLServer) adapter: requests."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest

from exporter.analysis.protocols.base import (
    PayloadError,
    Prediction,
    TensorInfo,
)
from tests.unit.exporter.analysis.protocols.v2_payloads import SPEC_REQUEST, SPEC_RESPONSE, v2


def test_spec_example_rows_and_predictions() -> None:
    parsed = v2(SPEC_REQUEST, SPEC_RESPONSE)
    assert parsed.protocol == "v2"
    assert parsed.rows == [{"input0": [1, 2], "input1": True}, {"input0": [3, 4], "input1": False}]
    assert parsed.predictions == [
        Prediction(value=0.1, label="0", score=0.9, probabilities={"0": 0.9, "1": 0.1}),
        Prediction(value=0.8, label="1", score=0.8, probabilities={"0": 0.2, "1": 0.8}),
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
    nested = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]
    }
    assert v2(nested, SPEC_RESPONSE).rows == [{"x": [1, 2]}, {"x": [3, 4]}]


def test_three_dimensional_tensor_rows_are_nested_lists() -> None:
    request = {
        "inputs": [
            {"name": "img", "shape": [2, 2, 3], "datatype": "INT32", "data": list(range(12))}
        ]
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
    inputs: list[dict[str, Any]] = [
        {"name": "sepal_length", "shape": [3, 1], "datatype": "FP64", "data": [5.1, 4.9, 6.2]},
        {
            "name": "species",
            "shape": [3],
            "datatype": "BYTES",
            "data": ["setosa", "setosa", "virginica"],
        },
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


def _triton_body(header: dict[str, Any], tail: bytes) -> tuple[bytes, dict[str, str]]:
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
            {
                "name": "input0",
                "shape": [2, 2],
                "datatype": "UINT32",
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "input1",
                "shape": [3],
                "datatype": "BOOL",
                "parameters": {"binary_data_size": 3},
            },
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
            {
                "name": "output0",
                "shape": [3, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 48},
            }
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


def test_a_request_past_max_rows_is_sampled_with_its_predictions_and_row_numbers() -> None:
    from exporter.analysis import protocols
    from exporter.analysis.protocols.base import (
        AdapterConfig,
        Exchange,
    )

    n = 5000
    request = {"inputs": [{"name": "x", "shape": [n], "datatype": "FP32", "data": list(range(n))}]}
    response = {"outputs": [{"name": "y", "shape": [n], "datatype": "FP32",
                             "data": [i * 2 for i in range(n)]}]}  # fmt: skip
    exchange = Exchange("POST", "/v2/models/m/infer", "", {}, json.dumps(request).encode(), 200,
                        {}, json.dumps(response).encode(), sample_seed="req-1")  # fmt: skip
    parsed = protocols.parse("v2", exchange, AdapterConfig(max_rows=100))
    assert parsed.total_rows == n and parsed.row_numbers is not None
    assert len(parsed.rows) == len(parsed.predictions) == len(parsed.row_numbers) == 100
    for row, prediction, number in zip(parsed.rows, parsed.predictions, parsed.row_numbers,
                                       strict=True):  # fmt: skip
        assert row == {"x": number} and prediction.value == 2 * number
    again = protocols.parse("v2", exchange, AdapterConfig(max_rows=100))
    assert again.row_numbers == parsed.row_numbers  # seeded by the request id
    assert protocols.parse("v2", exchange, AdapterConfig()).row_numbers is None


def test_non_standard_json_is_read_and_noted() -> None:
    from exporter.analysis import protocols
    from exporter.analysis.protocols.base import (
        AdapterConfig,
        Exchange,
    )

    body = b'{"instances": [{"x": NaN, "y": 1e400, "n\\ud800": "a\\udc00"}]}'
    exchange = Exchange("POST", "/v1/models/m:predict", "", {}, body, 500, {}, b"")
    parsed = protocols.parse("v1", exchange, AdapterConfig())
    assert parsed.notes == (("request", "non_finite_number"), ("request", "invalid_unicode"))
    row = parsed.rows[0]
    assert math.isnan(row["x"]) and row["y"] == math.inf and row["n\ufffd"] == "a\ufffd"
