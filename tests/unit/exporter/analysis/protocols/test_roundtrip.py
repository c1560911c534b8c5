"""Each test model server answers a realistic request; the adapters read both sides.

This also checks the servers themselves (health, 404/400, scripted failures,
keep-alive, recorded headers) since integration tests rely on them.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.analysis.protocols import route
from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    ParsedExchange,
    TensorInfo,
)
from tests.support.model_apps import sigmoid
from tests.support.model_servers import ModelServer
from tests.unit.exporter.analysis.protocols.helpers import parse_strict

GENERIC = AdapterConfig(
    rows_selector="$.records",
    predictions_selector="$.results",
    model_selector="$.model.name",
    version_selector="$.model.version",
)


def send(
    server: ModelServer, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        server.url + path,
        data=body,
        headers=headers or {"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def round_trip(
    protocol: str,
    path: str,
    payload: Any,
    headers: dict[str, str] | None = None,
    config: AdapterConfig | None = None,
) -> ParsedExchange:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = headers or {"Content-Type": "application/json"}
    with ModelServer(protocol, model="iris", version="2") as server:
        status, response_headers, response_body = send(server, path, body, headers)
    assert status == 200, response_body
    assert response_headers["x-model-server"] == protocol
    detected = route(path, "generic" if protocol == "generic" else "auto")
    assert detected.protocol == protocol
    exchange = Exchange(
        method="POST",
        path=path,
        query="",
        request_headers={k.lower(): v for k, v in headers.items()},
        request_body=body,
        status=status,
        response_headers={k.lower(): v for k, v in response_headers.items()},
        response_body=response_body,
    )
    return parse_strict(protocol, exchange, config or AdapterConfig())


def p(*values: float) -> float:
    return sigmoid(sum(values))


def test_v2_json() -> None:
    request = {
        "id": "req-1",
        "inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [0.5, 1.0, -3.0, 0.25]},
            {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["Paris", "Lyon"]},
        ],
    }
    parsed = round_trip("v2", "/v2/models/iris/versions/2/infer", request)
    assert parsed.rows == [{"x": [0.5, 1.0], "city": "Paris"}, {"x": [-3.0, 0.25], "city": "Lyon"}]
    assert (parsed.model, parsed.model_version) == ("iris", "2")
    assert [pr.label for pr in parsed.predictions] == ["1", "0"]
    assert parsed.predictions[0].value == pytest.approx(p(0.5, 1.0))
    assert parsed.predictions[1].score == pytest.approx(1 - p(-3.0, 0.25))


def test_v2_triton_binary_request() -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 24},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<6f", 1, 2, 3, -1, -2, -3.5)
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    parsed = round_trip("v2", "/v2/models/iris/infer", body, headers)
    assert parsed.rows == [] and parsed.tensors == [TensorInfo("x", (2, 3), "FP32")]
    assert [pr.value for pr in parsed.predictions] == pytest.approx([p(6), p(-6.5)])


def test_v1_rows_with_b64() -> None:
    request = {"instances": [{"x": [1.0, 2.0], "image": {"b64": "aGVsbG8="}}, {"x": [-4.0, 0.5]}]}
    parsed = round_trip("v1", "/v1/models/iris:predict", request)
    assert parsed.rows == [{"x": [1.0, 2.0], "image": {"b64_bytes": 5}}, {"x": [-4.0, 0.5]}]
    assert [pr.value for pr in parsed.predictions] == pytest.approx([p(3), p(-3.5)])


def test_mlflow_csv() -> None:
    body = b'a,b,name\n1,2.5,"x, y"\n-1,,z\n'
    parsed = round_trip("mlflow", "/invocations", body, {"Content-Type": "text/csv"})
    assert parsed.rows == [{"a": 1, "b": 2.5, "name": "x, y"}, {"a": -1, "b": None, "name": "z"}]
    assert [pr.value for pr in parsed.predictions] == [3.5, -1.0]


def test_mlflow_split_with_nan() -> None:
    request = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, NaN], [2, 3]]}}'
    parsed = round_trip("mlflow", "/invocations", request)
    assert math.isnan(parsed.rows[0]["b"])
    values = [pr.value for pr in parsed.predictions]
    assert values[0] is not None and math.isnan(values[0])
    assert values[1] == 5.0


def test_seldon_tensor() -> None:
    request = {
        "data": {"names": ["f0", "f1"], "tensor": {"shape": [2, 2], "values": [1, 1, -1, -2]}}
    }
    parsed = round_trip("seldon", "/api/v1.0/predictions", request)
    assert parsed.rows == [{"f0": 1, "f1": 1}, {"f0": -1, "f1": -2}]
    assert [pr.label for pr in parsed.predictions] == ["t:1", "t:0"]
    assert [pr.score for pr in parsed.predictions] == pytest.approx([p(2), 1 - p(-3)])


def test_generic_selectors() -> None:
    request = {"records": [{"amount": 3.0}, {"amount": -1.0}]}
    parsed = round_trip("generic", "/score", request, config=GENERIC)
    assert parsed.rows == request["records"]
    assert (parsed.model, parsed.model_version) == ("iris", "2")
    # {"score": s} is the dict form: a confidence, not a value.
    assert [pr.score for pr in parsed.predictions] == pytest.approx([p(3.0), p(-1.0)])


@pytest.fixture
def v2_server() -> Iterator[ModelServer]:
    with ModelServer("v2", model="iris") as server:
        yield server


@pytest.mark.parametrize(
    ("protocol", "path"),
    [
        ("v2", "/v2/health/ready"),
        ("v1", "/v1/models/demo"),
        ("mlflow", "/ping"),
        ("seldon", "/health/status"),
        ("generic", "/healthz"),
    ],
)
def test_health_endpoints(protocol: str, path: str) -> None:
    with (
        ModelServer(protocol) as server,
        urllib.request.urlopen(server.url + path, timeout=10) as response,
    ):
        assert response.status == 200
        assert response.headers["x-upstream-served"] == "1"


def test_unknown_path_bad_body_and_scripted_failure(v2_server: ModelServer) -> None:
    assert send(v2_server, "/nope", b"{}")[0] == 404
    status, _, body = send(v2_server, "/v2/models/iris/infer", b"[" * 100_000)
    assert status == 400 and "error" in json.loads(body)
    v2_server.fail_next(503, b'{"error": "overloaded"}', {"Retry-After": "1"})
    status, headers, body = send(v2_server, "/v2/models/iris/infer", b"{}")
    assert (status, headers["Retry-After"], body) == (503, "1", b'{"error": "overloaded"}')


def test_reset_next_drops_the_connection(v2_server: ModelServer) -> None:
    v2_server.reset_next()
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError)):
        send(v2_server, "/v2/models/iris/infer", b"{}")
    # Only that one request is affected.
    with urllib.request.urlopen(v2_server.url + "/v2/health/ready", timeout=10) as response:
        assert response.status == 200


def test_keep_alive_recording_and_chunked_bodies(v2_server: ModelServer) -> None:
    request = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    body = json.dumps(request).encode()
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(v2_server.url.rsplit(":", 1)[1]), timeout=10
    )
    try:
        connection.request("POST", "/v2/models/iris/infer?trace=1", body, {"X-Request-ID": "abc"})
        first = connection.getresponse()
        assert first.status == 200 and json.loads(first.read())["outputs"][0]["data"] == [1]
        connection.request(
            "POST", "/v2/models/iris/infer", iter([body[:10], body[10:]]), encode_chunked=True
        )
        second = connection.getresponse()
        assert second.status == 200 and second.read()
    finally:
        connection.close()
    first_request, second_request = v2_server.requests
    assert (first_request.path, first_request.query, first_request.body) == (
        "/v2/models/iris/infer",
        "trace=1",
        body,
    )
    assert ("X-Request-ID", "abc") in first_request.headers
    assert ("Transfer-Encoding", "chunked") in second_request.headers
    assert second_request.body == body


def test_bad_chunked_body_is_a_400_and_closes_the_connection(v2_server: ModelServer) -> None:
    port = int(v2_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer


def test_delay_and_stop_with_an_idle_keep_alive_connection() -> None:
    server = ModelServer("mlflow", delay_s=0.3).start()
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.monotonic()
        connection.request("GET", "/ping")
        assert connection.getresponse().read() == b"{}"
        assert time.monotonic() - started >= 0.3
        server.set_delay(0)
        started = time.monotonic()
        server.stop()  # the connection is still open and idle
        assert time.monotonic() - started < 2
    finally:
        connection.close()
        server.stop()
