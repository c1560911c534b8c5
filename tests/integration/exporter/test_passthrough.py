"""The sidecar forwards every request unchanged and returns the upstream's answer byte for byte."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Sidecar, free_port, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import scrape, value, wait_for

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def fixed(status_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [
        status_line,
        *(n + b": " + v for n, v in headers),
        b"content-length: " + str(len(body)).encode(),
        b"",
        body,
    ]
    return b"\r\n".join(lines)


def request(
    url: str,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request(method, target, body=body, headers=headers or {})
    response = connection.getresponse()
    response.read()
    return response


@pytest.fixture
def echo_upstream() -> Iterator[RawUpstream]:
    """Answers 201 with a body that is a function of the request, and end-to-end headers."""

    def respond(req: RawRequest) -> bytes:
        body = req.method.encode() + b" " + req.url.encode() + b"\n" + req.body
        return fixed(
            b"HTTP/1.1 201 Created",
            [
                (b"Content-Type", b"application/octet-stream"),
                (b"X-Model-Server", b"raw"),
                (b"Set-Cookie", b"a=1"),
                (b"Set-Cookie", b"b=2"),
                (b"Cache-Control", b"no-store"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Connection", b"keep-alive, X-Hop"),
                (b"X-Hop", b"must-not-pass"),
            ],
            body,
        )

    with RawUpstream(respond) as upstream:
        yield upstream


@pytest.fixture
def proxy(echo_upstream: RawUpstream, tmp_path: Path) -> Iterator[Sidecar]:
    with sidecar(echo_upstream.url, tmp_path) as running:
        yield running


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_method_path_query_and_body_arrive_unchanged(
    proxy: Sidecar, echo_upstream: RawUpstream, method: str
) -> None:
    body = os.urandom(3000) if method in ("POST", "PUT", "PATCH") else None
    target = "/some/path%20with/%C3%A9?q=1&q=2&x=%2F&empty="
    response = request(
        proxy.url, method, target, body, {"X-Custom": "value", "Authorization": "Bearer t"}
    )
    assert response.status == 201
    arrived = echo_upstream.requests[-1]
    assert (arrived.method, arrived.url) == (method, target)
    assert arrived.body == (body or b"")
    headers = {name.lower(): v for name, v in arrived.headers}
    assert headers["x-custom"] == "value"
    assert headers["authorization"] == "Bearer t"
    assert headers["host"] == f"127.0.0.1:{echo_upstream.port}"


def test_response_status_body_and_end_to_end_headers_come_back_byte_for_byte(
    proxy: Sidecar,
) -> None:
    body = os.urandom(5000)
    connection = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    connection.request("POST", "/x", body=body)
    response = connection.getresponse()
    content = response.read()
    assert response.status == 201
    assert response.reason == "Created"
    assert content == b"POST /x\n" + body
    assert response.getheader("X-Model-Server") == "raw"
    assert response.getheader("Cache-Control") == "no-store"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    # hop-by-hop fields (RFC 9110 7.6.1), including those the Connection field names
    assert response.getheader("X-Hop") is None
    assert response.getheader("Keep-Alive") is None
    assert int(response.getheader("Content-Length") or -1) == len(content)


def test_hop_by_hop_request_headers_are_not_forwarded(
    proxy: Sidecar, echo_upstream: RawUpstream
) -> None:
    request(
        proxy.url,
        "GET",
        "/",
        headers={
            "Connection": "X-Private",
            "X-Private": "secret",
            "TE": "trailers",
            "Proxy-Connection": "keep-alive",
            "Upgrade": "websocket",
            "X-Kept": "1",
        },
    )
    names = {name.lower() for name, _ in echo_upstream.requests[-1].headers}
    assert {"x-private", "te", "proxy-connection", "upgrade"}.isdisjoint(names)
    assert "x-kept" in names


def test_chunked_request_body_is_forwarded_whole(
    proxy: Sidecar, echo_upstream: RawUpstream
) -> None:
    connection = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    connection.request(
        "POST", "/chunked", body=iter([b"abc", b"def", b"g" * 10000]), encode_chunked=True
    )
    assert connection.getresponse().read() == b"POST /chunked\nabcdef" + b"g" * 10000
    arrived = echo_upstream.requests[-1]
    assert arrived.body == b"abcdef" + b"g" * 10000
    assert ("content-length", "10006") in [(n.lower(), v) for n, v in arrived.headers]


def test_connections_to_the_upstream_are_reused(proxy: Sidecar, echo_upstream: RawUpstream) -> None:
    accepted: list[int] = []
    original = echo_upstream._serve

    def counting(conn: socket.socket) -> None:
        accepted.append(1)
        original(conn)

    echo_upstream._serve = counting  # type: ignore[method-assign]
    for _ in range(20):
        assert request(proxy.url, "GET", "/again").status == 201
    assert len(accepted) <= 1


@pytest.mark.parametrize(
    ("raw", "expected_body"),
    [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            b"abcdefg",
        ),
        (b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 4\r\n\r\nteap", b"teap"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
def test_response_framings(tmp_path: Path, raw: bytes, expected_body: bytes) -> None:
    with RawUpstream(lambda _: raw) as upstream, sidecar(upstream.url, tmp_path) as running:
        response = request(running.url, "GET", "/")
        connection = http.client.HTTPConnection(running.url.removeprefix("http://"), timeout=10)
        connection.request("GET", "/")
        second = connection.getresponse()
        assert second.read() == expected_body
        assert second.status == response.status


def test_close_delimited_response_body(tmp_path: Path) -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"
    with (
        RawUpstream(lambda _: raw, close_after=True) as upstream,
        sidecar(upstream.url, tmp_path) as running,
    ):
        for _ in range(3):
            connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"until the end"


def test_head_response_has_headers_and_no_body(tmp_path: Path) -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\nx-model-server: raw\r\n\r\n"
    with RawUpstream(lambda _: raw) as upstream, sidecar(upstream.url, tmp_path) as running:
        for _ in range(2):
            connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
            connection.request("HEAD", "/")
            response = connection.getresponse()
            assert response.read() == b""
            assert response.getheader("content-length") == "1234"
            assert response.getheader("x-model-server") == "raw"


def test_large_streamed_response_arrives_intact(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    raw = fixed(b"HTTP/1.1 200 OK", [], payload)
    with RawUpstream(lambda _: raw) as upstream, sidecar(upstream.url, tmp_path) as running:
        connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
        connection.request("GET", "/big")
        assert connection.getresponse().read() == payload


class TestRequestId:
    def test_client_x_request_id_is_forwarded_and_echoed(
        self, proxy: Sidecar, echo_upstream: RawUpstream
    ) -> None:
        response = request(
            proxy.url,
            "POST",
            "/v2/models/m/infer",
            b"{}",
            {"X-Request-Id": "client-1", "ce-id": "ce-1"},
        )
        assert response.getheader("x-request-id") == "client-1"
        assert ("x-request-id", "client-1") in echo_upstream.requests[-1].headers

    def test_ce_id_is_used_when_there_is_no_x_request_id(
        self, proxy: Sidecar, echo_upstream: RawUpstream
    ) -> None:
        response = request(proxy.url, "POST", "/v1/models/m:predict", b"{}", {"ce-id": "ce-7"})
        assert response.getheader("x-request-id") == "ce-7"
        assert ("x-request-id", "ce-7") in echo_upstream.requests[-1].headers

    def test_v2_body_id_is_used_when_there_is_no_header(
        self, proxy: Sidecar, echo_upstream: RawUpstream
    ) -> None:
        body = json.dumps({"id": "body-42", "inputs": []}).encode()
        response = request(proxy.url, "POST", "/v2/models/m/infer", body)
        assert response.getheader("x-request-id") == "body-42"
        assert ("x-request-id", "body-42") in echo_upstream.requests[-1].headers
        assert echo_upstream.requests[-1].body == body

    def test_otherwise_a_new_uuid_is_made_for_each_request(
        self, proxy: Sidecar, echo_upstream: RawUpstream
    ) -> None:
        ids = {
            request(proxy.url, "POST", "/invocations", b"{}").getheader("x-request-id")
            for _ in range(3)
        }
        assert len(ids) == 3
        assert all(UUID.match(i or "") for i in ids)
        assert dict(echo_upstream.requests[-1].headers)["x-request-id"] in ids


class TestUpstreamFailures:
    def test_refused_gives_502_naming_reason_and_request_id_then_recovers(
        self, tmp_path: Path
    ) -> None:
        port = free_port()
        with sidecar(f"http://127.0.0.1:{port}", tmp_path) as running:
            response = http.client.HTTPConnection(running.url.removeprefix("http://"))
            response.request("POST", "/v2/models/m/infer", b"{}", {"x-request-id": "r-1"})
            answer = response.getresponse()
            error = json.loads(answer.read())
            assert answer.status == 502
            assert error["reason"] == "connect_refused"
            assert error["request_id"] == "r-1"
            assert answer.getheader("x-request-id") == "r-1"
            assert request(running.url, "GET", "/readyz").status == 503

            raw = fixed(b"HTTP/1.1 200 OK", [], b"back")
            with RawUpstream(lambda _: raw, port=port):
                assert request(running.url, "GET", "/").status == 200
                assert request(running.url, "GET", "/readyz").status == 200
            samples = scrape(running.url)
            assert value(samples, "mlmon_upstream_errors_total", reason="connect_refused") == 1

    def test_slow_upstream_gives_504_read_timeout(self, tmp_path: Path) -> None:
        def slow(_: RawRequest) -> bytes:
            time.sleep(1.5)
            return fixed(b"HTTP/1.1 200 OK", [], b"late")

        with (
            RawUpstream(slow) as upstream,
            sidecar(upstream.url, tmp_path, env={"MLMON_READ_TIMEOUT_S": "0.3"}) as running,
        ):
            started = time.monotonic()
            response = http.client.HTTPConnection(running.url.removeprefix("http://"))
            response.request("GET", "/")
            answer = response.getresponse()
            assert answer.status == 504
            assert json.loads(answer.read())["reason"] == "read_timeout"
            assert time.monotonic() - started < 1.4
            assert (
                value(scrape(running.url), "mlmon_upstream_errors_total", reason="read_timeout")
                == 1
            )

    def test_reset_gives_502_connection_reset(self, tmp_path: Path) -> None:
        with RawUpstream(lambda _: None) as upstream, sidecar(upstream.url, tmp_path) as running:
            response = http.client.HTTPConnection(running.url.removeprefix("http://"))
            response.request("GET", "/")
            answer = response.getresponse()
            assert answer.status == 502
            assert json.loads(answer.read())["reason"] == "connection_reset"

    def test_garbage_response_gives_502_protocol_error(self, tmp_path: Path) -> None:
        with (
            RawUpstream(lambda _: b"NOT HTTP AT ALL\r\n\r\n") as upstream,
            sidecar(upstream.url, tmp_path) as running,
        ):
            answer = request(running.url, "GET", "/")
            assert answer.status == 502

    def test_upstream_500_is_passed_through_not_an_upstream_error(self, tmp_path: Path) -> None:
        raw = fixed(b"HTTP/1.1 500 Internal Server Error", [], b'{"error":"model crashed"}')
        with RawUpstream(lambda _: raw) as upstream, sidecar(upstream.url, tmp_path) as running:
            connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
            connection.request("POST", "/v2/models/m/infer", b"{}")
            answer = connection.getresponse()
            assert answer.status == 500
            assert answer.read() == b'{"error":"model crashed"}'
            samples = wait_for(
                running.url, lambda s: value(s, "mlmon_requests_total", code="500") == 1
            )
            assert value(samples, "mlmon_requests_total", code="500", model="m", protocol="v2") == 1
            assert value(samples, "mlmon_upstream_errors_total") == 0
