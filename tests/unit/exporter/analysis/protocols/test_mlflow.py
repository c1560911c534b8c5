"""MLflow scoring server adapter, with the payloads of MLflow's deployment docs."""

from __future__ import annotations

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
RESPONSE = {"predictions": [0.5, 1.5]}
ROWS = [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]


def mlflow(
    request: object,
    response: object = RESPONSE,
    content_type: str | None = "application/json",
    **kw: Any,
) -> ParsedExchange:
    headers = {} if content_type is None else {"content-type": content_type}
    ex = exchange(request, response, path="/invocations", request_headers=headers, **kw)
    return parse_strict("mlflow", ex, CONFIG)


@pytest.mark.parametrize(
    "request_body",
    [
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}},
        {
            "dataframe_split": {
                "index": [7, 8],
                "columns": ["a", "b", "c"],
                "data": [[1, 2, 3], [4, 5, 6]],
            }
        },
        {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
        {"instances": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
        {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}},
        {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}, "params": {"temperature": 0.5}},
    ],
)
def test_every_json_format_gives_the_same_rows(request_body: object) -> None:
    parsed = mlflow(request_body)
    assert parsed.rows == ROWS
    assert [p.value for p in parsed.predictions] == [0.5, 1.5]


def test_dataframe_split_without_columns_names_them_by_position() -> None:
    assert mlflow({"dataframe_split": {"data": [[1, "x"], [2, "y"]]}}).rows == [
        {"0": 1, "1": "x"},
        {"0": 2, "1": "y"},
    ]


def test_tensor_instances_and_b64() -> None:
    assert mlflow({"instances": [[1, 2], [3, 4]]}).rows == [
        {"instance": [1, 2]},
        {"instance": [3, 4]},
    ]
    assert mlflow({"inputs": {"img": [{"b64": "aGVsbG8="}]}}).rows == [{"img": {"b64_bytes": 5}}]


def test_missing_content_type_with_a_json_body_parses() -> None:
    assert mlflow({"dataframe_records": ROWS}, content_type=None).rows == ROWS


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"params": {"k": 1}},
        {"dataframe_records": ROWS, "instances": ROWS},
        {"dataframe_split": ROWS},
        {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
        {"dataframe_split": {"columns": "a", "data": [[1]]}},
        {"dataframe_split": {"columns": ["a"], "data": [1]}},
        {"dataframe_records": [1, 2]},
        {"instances": "x"},
        [ROWS],
    ],
)
def test_wrong_envelopes_are_invalid_shape(request_body: object) -> None:
    with pytest.raises(PayloadError) as error:
        mlflow(request_body)
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "application/csv"])
def test_csv_with_quotes_empty_cells_and_numbers(content_type: str) -> None:
    csv_body = (
        b"name,age,income,city,score\r\n"
        b'"Smith, John",42,1.5e3,"New York, NY",\r\n'
        b'Jane,,-7.25,"He said ""hi""",0\r\n'
        b"\r\n"
    )
    parsed = mlflow(csv_body, content_type=content_type)
    assert parsed.rows == [
        {"name": "Smith, John", "age": 42, "income": 1500.0, "city": "New York, NY", "score": None},
        {"name": "Jane", "age": None, "income": -7.25, "city": 'He said "hi"', "score": 0},
    ]
    assert isinstance(parsed.rows[0]["age"], int)


def test_csv_with_byte_order_mark_and_header_only() -> None:
    assert mlflow("\ufeffx,y\n1,2\n".encode(), content_type="text/csv").rows == [{"x": 1, "y": 2}]
    assert mlflow(b"x,y\n", content_type="text/csv").rows == []


@pytest.mark.parametrize(
    "csv_body",
    [b"", b"a,b\n1,2,3\n", b"a,b\n1\n", b'a,b\n"unterminated,2\n', b"a,b\n\xff\xfe,1\n"],
)
def test_bad_csv_is_invalid_csv(csv_body: bytes) -> None:
    with pytest.raises(PayloadError) as error:
        mlflow(csv_body, content_type="text/csv")
    assert (error.value.part, error.value.reason) == ("request", "invalid_csv")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream"]
)
def test_other_content_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(PayloadError) as error:
        mlflow({"dataframe_records": ROWS}, content_type=content_type)
    assert error.value.reason == "unsupported_content_type"


def test_bare_list_response_of_mlflow_1() -> None:
    assert [p.value for p in mlflow({"dataframe_records": ROWS}, [3.0, 4.0]).predictions] == [
        3.0,
        4.0,
    ]


def test_dataframe_output_uses_the_first_column() -> None:
    records = {
        "predictions": [{"yhat": 10.0, "yhat_lower": 8.0}, {"yhat": 11.0, "yhat_lower": 9.0}]
    }
    assert [p.value for p in mlflow({"dataframe_records": ROWS}, records).predictions] == [
        10.0,
        11.0,
    ]
    columns = {"predictions": {"yhat": [10.0, 11.0], "yhat_upper": [12.0, 13.0]}}
    assert [p.value for p in mlflow({"dataframe_records": ROWS}, columns).predictions] == [
        10.0,
        11.0,
    ]


def test_dataframe_output_with_label_and_probability_columns() -> None:
    records = {
        "predictions": [
            {"predicted_label": "churn", "probability": 0.8},
            {"predicted_label": "stay", "probability": 0.65},
        ]
    }
    assert mlflow({"dataframe_records": ROWS}, records).predictions == [
        Prediction(value=0.8, label="churn", score=0.8),
        Prediction(value=0.65, label="stay", score=0.65),
    ]


def test_string_and_probability_predictions() -> None:
    parsed = mlflow({"dataframe_records": ROWS}, {"predictions": ["setosa", [0.2, 0.8]]})
    assert parsed.predictions == [
        Prediction(label="setosa"),
        Prediction(value=0.8, label="1", score=0.8, probabilities={"0": 0.2, "1": 0.8}),
    ]


def test_non_finite_predictions() -> None:
    parsed = mlflow({"dataframe_records": ROWS}, b'{"predictions": [NaN, -Infinity]}')
    assert math.isnan(parsed.predictions[0].value or 0.0)
    assert parsed.predictions[1].value == -math.inf


@pytest.mark.parametrize("response", [{"error_code": "BAD_REQUEST"}, "ok", b"<html>"])
def test_bad_responses(response: object) -> None:
    with pytest.raises(PayloadError) as error:
        mlflow({"dataframe_records": ROWS}, response)
    assert error.value.part == "response"


def test_error_status_keeps_rows() -> None:
    parsed = mlflow({"dataframe_records": ROWS}, {"error_code": "BAD_REQUEST"}, status=400)
    assert parsed.rows == ROWS and parsed.predictions == []
