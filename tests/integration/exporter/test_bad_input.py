"""Bad payloads are forwarded unchanged, counted, and never break the client's answer."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Sidecar, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import Samples, scrape, value, wait_for

V2_PATH = "/v2/models/iris/infer"
GOOD_V2 = json.dumps(
    {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
).encode()


def answer(status: int, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def model_server(req: RawRequest) -> bytes:
    """Rejects what it cannot read, like a real model server; NaN scores on request."""
    try:
        payload = json.loads(req.body)
        rows = payload["inputs"][0]["shape"][0]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return answer(400, b'{"error":"bad request"}')
    score = "NaN" if payload.get("parameters", {}).get("nan") else "0.75"
    data = ",".join([score] * rows)
    outputs = f'{{"name":"p","shape":[{rows}],"datatype":"FP32","data":[{data}]}}'
    return answer(
        200, b'{"model_name":"iris","model_version":"3","outputs":[' + outputs.encode() + b"]}"
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(model_server) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(upstream: RawUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    with sidecar(
        upstream.url,
        tmp_path_factory.mktemp("bad"),
        env={"MLMON_CAPTURE_MAX_BYTES": str(1024 * 1024)},
    ) as running:
        yield running


def post(
    url: str, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    connection.request("POST", path, body=body, headers={"content-type": content_type})
    response = connection.getresponse()
    return response.status, response.read()


def parse_errors(samples: Samples, reason: str) -> float:
    return value(samples, "mlmon_payload_parse_errors_total", reason=reason)


def still_serving(proxy: Sidecar) -> None:
    status, body = post(proxy.url, V2_PATH, GOOD_V2)
    assert status == 200
    assert json.loads(body)["model_version"] == "3"


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("not json", b"hello, model", "invalid_json"),
        ("truncated json", GOOD_V2[: len(GOOD_V2) // 2], "invalid_json"),
        ("binary", os.urandom(20_000), "invalid_json"),
        ("deeply nested", b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        ("json of the wrong shape", b'{"instances": [1, 2]}', "invalid_shape"),
    ],
)
def test_unreadable_request_is_forwarded_unchanged_and_counted(
    proxy: Sidecar, upstream: RawUpstream, name: str, body: bytes, reason: str
) -> None:
    before = parse_errors(scrape(proxy.url), reason)
    status, response = post(proxy.url, V2_PATH, body)
    assert (status, response) == (400, b'{"error":"bad request"}'), name
    assert upstream.requests[-1].body == body
    samples = wait_for(proxy.url, lambda s: parse_errors(s, reason) == before + 1)
    assert parse_errors(samples, reason) == before + 1
    still_serving(proxy)


def test_wrong_content_type_is_counted(proxy: Sidecar, upstream: RawUpstream) -> None:
    before = parse_errors(scrape(proxy.url), "unsupported_content_type")
    status, _ = post(proxy.url, "/invocations", b"\x00\x01image", "image/png")
    assert status == 400
    assert upstream.requests[-1].body == b"\x00\x01image"
    samples = wait_for(
        proxy.url, lambda s: parse_errors(s, "unsupported_content_type") == before + 1
    )
    assert (
        value(
            samples,
            "mlmon_payload_parse_errors_total",
            protocol="mlflow",
            part="request",
            reason="unsupported_content_type",
        )
        == before + 1
    )


def test_nan_and_infinity_tokens_are_forwarded_and_non_finite_predictions_counted(
    proxy: Sidecar, upstream: RawUpstream
) -> None:
    body = (
        b'{"parameters":{"nan":true},"inputs":[{"name":"x","shape":[3],"datatype":"FP32",'
        b'"data":[NaN, Infinity, -Infinity]}]}'
    )
    before = value(scrape(proxy.url), "mlmon_non_finite_predictions_total")
    status, response = post(proxy.url, V2_PATH, body)
    assert status == 200
    assert b"NaN" in response
    assert upstream.requests[-1].body == body
    samples = wait_for(
        proxy.url, lambda s: value(s, "mlmon_non_finite_predictions_total") == before + 3
    )
    assert value(samples, "mlmon_non_finite_predictions_total", model="iris") == before + 3


def test_body_above_the_capture_limit_is_forwarded_but_not_parsed(
    proxy: Sidecar, upstream: RawUpstream
) -> None:
    data = ",".join(["1.5"] * 13_000_000)  # ~50 MB of JSON
    body = (
        b'{"inputs":[{"name":"x","shape":[13000000],"datatype":"FP32","data":['
        + data.encode()
        + b"]}]}"
    )
    assert len(body) > 50_000_000
    before = parse_errors(scrape(proxy.url), "too_large")
    status, response = post(proxy.url, V2_PATH, body)
    assert status == 200
    assert json.loads(response)["outputs"][0]["shape"] == [13_000_000]
    assert upstream.requests[-1].body == body
    samples = wait_for(proxy.url, lambda s: parse_errors(s, "too_large") == before + 1)
    assert (
        value(samples, "mlmon_payload_parse_errors_total", part="request", reason="too_large")
        == before + 1
    )
    still_serving(proxy)


def test_unknown_paths_are_forwarded_and_not_parsed(proxy: Sidecar, upstream: RawUpstream) -> None:
    before = scrape(proxy.url)
    status, _ = post(proxy.url, "/no/such/api", b"not json at all")
    assert status == 400
    assert upstream.requests[-1].url == "/no/such/api"
    samples = wait_for(
        proxy.url,
        lambda s: (
            value(s, "mlmon_requests_total", protocol="none")
            > value(before, "mlmon_requests_total", protocol="none")
        ),
    )
    assert value(samples, "mlmon_payload_parse_errors_total") == value(
        before, "mlmon_payload_parse_errors_total"
    )


def test_request_above_max_request_bytes_gets_413_and_the_sidecar_keeps_serving(
    upstream: RawUpstream, tmp_path: Path
) -> None:
    with sidecar(upstream.url, tmp_path, env={"MLMON_MAX_REQUEST_BYTES": "1000"}) as running:
        status, body = post(running.url, V2_PATH, b"x" * 5000)
        assert status == 413
        assert b"max_request_bytes" in body
        still_serving(running)
