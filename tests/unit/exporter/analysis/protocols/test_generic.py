"""Generic JSON adapter and its selectors."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.analysis.protocols.base import (
    AdapterConfig,
    ParsedExchange,
    PayloadError,
    Prediction,
)
from exporter.analysis.protocols.generic import compile_selector
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict

REQUEST = {
    "model": "fraud",
    "payload": {
        "transactions": [
            {"amount": 12.5, "country": "FR"},
            {"amount": 990.0, "country": "US"},
        ]
    },
}
RESPONSE = {
    "meta": {"model": {"name": "fraud-xgb", "version": 7}},
    "results": [{"fraud_probability": 0.02}, {"fraud_probability": 0.91}],
}


def generic(
    config: AdapterConfig, request: object = REQUEST, response: object = RESPONSE, **kw: Any
) -> ParsedExchange:
    return parse_strict("generic", exchange(request, response, path="/score", **kw), config)


def test_selector_syntax() -> None:
    assert compile_selector("$").steps == ()
    assert compile_selector("$.a.b[0]['c d'][*][\"e.f\"][-1].*").steps == (
        "a",
        "b",
        0,
        "c d",
        None,
        "e.f",
        -1,
        None,
    )


@pytest.mark.parametrize("text", ["a.b", "$a", "$..a", "$.a[", "$[x]", "$.a[1.5]", "$.a b["])
def test_invalid_selector_syntax_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        compile_selector(text)


def test_rows_and_predictions_without_wildcards() -> None:
    config = AdapterConfig(
        rows_selector="$.payload.transactions",
        predictions_selector="$.results",
        model_selector="$.meta.model.name",
        version_selector="$.meta.model.version",
    )
    parsed = generic(config)
    assert parsed.rows == REQUEST["payload"]["transactions"]  # type: ignore[index]
    assert [p.value for p in parsed.predictions] == [0.02, 0.91]
    assert (parsed.model, parsed.model_version) == ("fraud-xgb", "7")


def test_wildcards_select_one_value_per_row() -> None:
    config = AdapterConfig(
        rows_selector="$.payload.transactions[*].amount",
        predictions_selector="$['results'][*].fraud_probability",
    )
    parsed = generic(config)
    assert parsed.rows == [{"value": 12.5}, {"value": 990.0}]
    assert [p.value for p in parsed.predictions] == [0.02, 0.91]


def test_single_object_is_one_row_and_binary_task_labels() -> None:
    config = AdapterConfig(
        rows_selector="$.features",
        predictions_selector="$.score",
        task="binary",
        class_names=("legit", "fraud"),
    )
    parsed = generic(config, {"features": {"age": 40}}, {"score": 0.9})
    assert parsed.rows == [{"age": 40}]
    assert parsed.predictions == [Prediction(value=0.9, label="fraud", score=0.9)]


def test_negative_index_and_root_list() -> None:
    config = AdapterConfig(rows_selector="$", predictions_selector="$[-1]")
    parsed = generic(config, [[1, 2], [3, 4]], [["ignored"], [0.1, 0.9]])
    assert parsed.rows == [{"value": [1, 2]}, {"value": [3, 4]}]
    assert [p.value for p in parsed.predictions] == [0.1, 0.9]


def test_model_comes_from_the_request_when_the_response_lacks_it() -> None:
    config = AdapterConfig(model_selector="$.model", version_selector="$.nowhere")
    parsed = generic(config)
    assert (parsed.model, parsed.model_version) == ("fraud", None)


def test_empty_selectors_read_nothing_not_even_invalid_json() -> None:
    parsed = generic(AdapterConfig(), b"\xff not json", b"<html>")
    assert parsed.rows == [] and parsed.predictions == [] and parsed.model is None


@pytest.mark.parametrize(
    ("config", "part"),
    [
        (AdapterConfig(rows_selector="$.payload.nothing"), "request"),
        (AdapterConfig(rows_selector="$.payload.transactions[5]"), "request"),
        (AdapterConfig(rows_selector="$.model[*]"), "request"),
        (AdapterConfig(predictions_selector="$.results[*].label"), "response"),
        (AdapterConfig(predictions_selector="results"), "response"),
        (AdapterConfig(rows_selector="$.["), "request"),
    ],
)
def test_selectors_matching_nothing_are_invalid_selector(config: AdapterConfig, part: str) -> None:
    with pytest.raises(PayloadError) as error:
        generic(config)
    assert (error.value.part, error.value.reason) == (part, "invalid_selector")


def test_predictions_are_skipped_for_error_responses() -> None:
    config = AdapterConfig(rows_selector="$.payload.transactions", predictions_selector="$.results")
    parsed = generic(config, response={"error": "overloaded"}, status=503)
    assert len(parsed.rows) == 2 and parsed.predictions == []


def test_invalid_json_with_a_selector() -> None:
    with pytest.raises(PayloadError) as error:
        generic(AdapterConfig(rows_selector="$"), b'{"a": [1, 2')
    assert error.value.reason == "invalid_json"
