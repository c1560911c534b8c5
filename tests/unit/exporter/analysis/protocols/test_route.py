"""Protocol detection from the path, and the `parse` dispatcher's guarantees."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from exporter.analysis import protocols
from exporter.analysis.protocols import PROTOCOLS, Route, parse, route
from exporter.analysis.protocols.base import (
    PARSE_ERROR_REASONS,
    AdapterConfig,
    PayloadError,
    ResponsePart,
)
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/iris/infer", Route("v2", "iris", None)),
        ("/v2/models/iris/versions/3/infer", Route("v2", "iris", "3")),
        ("/v2/models/my%20model%2Fa/versions/v%201/infer", Route("v2", "my model/a", "v 1")),
        ("/v1/models/half_plus_two:predict", Route("v1", "half_plus_two", None)),
        ("/v1/models/half_plus_two/versions/2:predict", Route("v1", "half_plus_two", "2")),
        ("/v1/models/m/labels/stable:classify", Route("v1", "m", "stable")),
        ("/v1/models/m:regress", Route("v1", "m", None)),
        ("/invocations", Route("mlflow")),
        ("/api/v1.0/predictions", Route("seldon")),
        ("/api/v0.1/predictions", Route("seldon")),
        ("/predict", Route("seldon")),
        ("/seldon/prod/iris/api/v1.0/predictions", Route("seldon")),
        ("/v2/models/iris/infer?timeout=5", Route("v2", "iris", None)),
    ],
)
def test_inference_paths(path: str, expected: Route) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v2/health/ready",
        "/v2/health/live",
        "/v2/models/iris",
        "/v2/models/iris/versions/3/ready",
        "/v2/repository/index",
        "/v1/models/iris",
        "/v1/models/iris/metadata",
        "/v1/models/iris:explain",
        "/ping",
        "/health/status",
        "/metrics",
        "/api/v1.0/feedback",
        "/score",
        "/v2/models/iris/infer/extra",
        "/invocations/",
    ],
)
def test_other_paths_are_not_inference(path: str) -> None:
    assert route(path) == Route(None)


@pytest.mark.parametrize(
    ("path", "override", "expected"),
    [
        ("/score", "generic", Route("generic")),
        ("/v2/models/iris/versions/2/infer", "generic", Route("generic", "iris", "2")),
        ("/predict", "v1", Route("v1")),
        ("/custom/infer", "v2", Route("v2")),
        ("/v2/health/ready", "v2", Route(None)),
        ("/ping", "mlflow", Route(None)),
        ("/health/status", "seldon", Route(None)),
        ("/v1/models/iris/metadata", "generic", Route(None)),
    ],
)
def test_override(path: str, override: str, expected: Route) -> None:
    assert route(path, override) == expected


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        route("/x", "grpc")


def test_route_cache_is_bounded() -> None:
    for i in range(10_000):
        route(f"/random/{i}")
    assert len(protocols._routes) <= protocols._CACHE_LIMIT
    assert route("/v2/models/a/infer") is route("/v2/models/a/infer")


def test_parse_rejects_an_unknown_protocol() -> None:
    with pytest.raises(ValueError):
        parse_strict("grpc", exchange({}), AdapterConfig())


def test_unforeseen_adapter_errors_become_payload_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ex: object, config: object) -> ResponsePart:
        raise RecursionError("maximum recursion depth exceeded")

    v1 = protocols.BY_NAME["v1"]
    monkeypatch.setitem(protocols.BY_NAME, "v1", dataclasses.replace(v1, parse_response=broken))
    with pytest.raises(PayloadError) as error:
        parse_strict("v1", exchange({"instances": [1]}, {"predictions": [1]}), AdapterConfig())
    assert (error.value.part, error.value.reason) == ("response", "invalid_shape")
    assert "RecursionError" in error.value.detail


def test_payload_error_reasons_are_bounded() -> None:
    assert "too_large" in PARSE_ERROR_REASONS
    assert PayloadError("request", "too_large").reason == "too_large"
    with pytest.raises(ValueError):
        PayloadError("request", "something_else")


VALID_REQUESTS = {
    "v2": {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
    "v1": {"instances": [[1, 2]]},
    "mlflow": {"dataframe_records": [{"x": 1}]},
    "seldon": {"data": {"ndarray": [[1, 2]]}},
    "generic": {"rows": [{"x": 1}]},
}
GENERIC = AdapterConfig(rows_selector="$.rows", predictions_selector="$.predictions")
HOSTILE = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "invalid_json", id="deeply-nested"),
    pytest.param(b"{" + b'"a":{' * 50_000, "invalid_json", id="deep-truncated"),
    pytest.param(os.urandom(4096), "invalid_json", id="random-bytes"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b"\xef\xbb\xbf\x00\x00", "invalid_json", id="nul-bytes"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("payload", "reason"), HOSTILE)
def test_hostile_request_bodies(protocol: str, payload: bytes, reason: str) -> None:
    ex = exchange(payload, {"predictions": [1]})
    with pytest.raises(PayloadError) as error:
        parse_strict(protocol, ex, GENERIC)
    assert (error.value.part, error.value.reason) == ("request", reason)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_request_bodies(protocol: str) -> None:
    whole = json.dumps(VALID_REQUESTS[protocol]).encode()
    for cut in range(1, len(whole)):
        with pytest.raises(PayloadError) as error:
            parse_strict(protocol, exchange(whole[:cut]), GENERIC)
        assert error.value.reason == "invalid_json"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("payload", "reason"), HOSTILE)
def test_hostile_response_bodies(protocol: str, payload: bytes, reason: str) -> None:
    ex = exchange(VALID_REQUESTS[protocol], payload)
    with pytest.raises(PayloadError) as error:
        parse_strict(protocol, ex, GENERIC)
    assert (error.value.part, error.value.reason) == ("response", reason)


def _nested(depth: int) -> bytes:
    return (
        b'{"instances": [{"image": {"b64": "AAAA"}, "x": '
        + b"[" * depth
        + b"1"
        + b"]" * depth
        + b"}]}"
    )


def test_deep_but_parseable_json_is_read() -> None:
    parsed = parse_strict("v1", exchange(_nested(300), {"predictions": [1]}), AdapterConfig())
    row = parsed.rows[0]
    assert row["image"] == {"b64_bytes": 3}
    value = row["x"]
    for _ in range(300):
        value = value[0]
    assert value == 1


def test_json_deeper_than_the_adapters_can_walk_is_counted_not_raised() -> None:
    # json accepts this depth, but walking it for b64 values exceeds the recursion limit.
    with pytest.raises(PayloadError) as error:
        parse_strict("v1", exchange(_nested(700), {"predictions": [1]}), AdapterConfig())
    assert (error.value.part, error.value.reason) == ("request", "invalid_shape")


@pytest.mark.parametrize("response", [b"", b"<html>oops</html>", b'{"unexpected": 1}'])
def test_an_unreadable_response_keeps_the_request_rows(response: bytes) -> None:
    request = {"instances": [{"a": 1}, {"a": 2}]}
    parsed = parse("v1", exchange(request, response), AdapterConfig())
    assert parsed.rows == [{"a": 1}, {"a": 2}]
    assert parsed.predictions == []
    assert parsed.response_error is not None
    assert parsed.response_error.part == "response"
