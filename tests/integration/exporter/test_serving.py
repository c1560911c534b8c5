"""The client side of the sidecar's HTTP server: what `exporter.serving.protocol` owns.

Raw sockets, because these are the framings `http.client` does not produce:
pipelined requests, `Expect: 100-continue`, HTTP/1.0, a client that leaves
mid-body.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

from tests.support.processes import Sidecar, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import scrape, value


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False


class _Replies:
    """httptools callbacks collecting every response on one connection."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.replies.append(Reply())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.replies[-1].headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.replies[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.replies[-1].body += body

    def on_message_complete(self) -> None:
        self.replies[-1].complete = True


def read_replies(sock: socket.socket, count: int) -> list[Reply]:
    collected = _Replies()
    sock.settimeout(10)
    while sum(r.complete for r in collected.replies) < count:
        data = sock.recv(65536)
        if not data:
            break
        collected.parser.feed_data(data)
    return collected.replies


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


def echo(request: RawRequest) -> bytes:
    body = request.url.encode() + b" " + request.body
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(echo) as running:
        yield running


@pytest.fixture
def proxy(upstream: RawUpstream, tmp_path: Path) -> Iterator[Sidecar]:
    with sidecar(upstream.url, tmp_path) as running:
        yield running


def connect(proxy: Sidecar) -> socket.socket:
    host, port = proxy.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_pipelined_requests_are_answered_in_order(proxy: Sidecar) -> None:
    with connect(proxy) as sock:
        sock.sendall(
            post("/first", b"1")
            + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
            + post("/third", b"333")
            + b"GET /fourth?q=4 HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        replies = read_replies(sock, 4)
    assert [r.status for r in replies] == [200, 200, 200, 200]
    assert replies[0].body == b"/first 1"
    assert b'"ok"' in replies[1].body  # the control endpoint, between proxied requests
    assert replies[2].body == b"/third 333"
    assert replies[3].body == b"/fourth?q=4 "


def test_expect_100_continue_gets_continue_then_the_answer(
    proxy: Sidecar, upstream: RawUpstream
) -> None:
    with connect(proxy) as sock:
        sock.sendall(
            b"POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
            b"expect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        (reply,) = read_replies(sock, 1)
    assert (reply.status, reply.body) == (200, b"/v2/models/m/infer hello")
    # Expect is the proxy's business (it buffers the body): not forwarded.
    assert "expect" not in {name.lower() for name, _ in upstream.requests[-1].headers}


def test_http_10_client_gets_its_answer_then_the_connection_closes(proxy: Sidecar) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        (reply,) = read_replies(sock, 1)
        assert sock.recv(100) == b""  # closed by the sidecar
    assert (reply.status, reply.body) == (200, b"/old ")
    assert reply.headers["connection"] == "close"


def test_a_client_leaving_mid_body_is_not_forwarded_and_serving_goes_on(
    proxy: Sidecar, upstream: RawUpstream
) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"POST /cut HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\npartial")
    with connect(proxy) as sock:
        sock.sendall(post("/after", b"ok"))
        (reply,) = read_replies(sock, 1)
    assert (reply.status, reply.body) == (200, b"/after ok")
    assert [r.url for r in upstream.requests] == ["/after"]


def test_a_body_over_the_limit_gets_413_and_the_connection_stays_usable(
    upstream: RawUpstream, tmp_path: Path
) -> None:
    with (
        sidecar(upstream.url, tmp_path, env={"MLMON_MAX_REQUEST_BYTES": "1000"}) as running,
        connect(running) as sock,
    ):
        sock.sendall(post("/big", b"x" * 5000) + post("/small", b"y"))
        replies = read_replies(sock, 2)
    assert [r.status for r in replies] == [413, 200]
    assert b"max_request_bytes" in replies[0].body
    assert replies[1].body == b"/small y"
    assert [r.url for r in upstream.requests] == ["/small"]


def test_no_length_is_added_to_a_204(tmp_path: Path) -> None:
    with (
        RawUpstream(lambda _: b"HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n") as upstream,
        sidecar(upstream.url, tmp_path) as running,
        connect(running) as sock,
    ):
        sock.sendall(b"DELETE /thing HTTP/1.1\r\nhost: x\r\n\r\n" + post("/again", b""))
        replies = read_replies(sock, 2)
    assert [r.status for r in replies] == [204, 204]
    assert "content-length" not in replies[0].headers
    assert replies[0].headers["x-a"] == "b"


def test_streamed_response_without_length_is_rechunked(tmp_path: Path) -> None:
    def slow_chunks(_: RawRequest) -> bytes:
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

    class Streaming(RawUpstream):
        def _serve(self, conn: socket.socket) -> None:  # answers in parts, 50 ms apart
            with conn:
                conn.recv(65536)
                conn.sendall(slow_chunks(RawRequest("GET", "/", [], b"")))
                for part in (b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"):
                    time.sleep(0.05)
                    conn.sendall(part)

    with (
        Streaming(slow_chunks) as upstream,
        sidecar(upstream.url, tmp_path) as running,
        connect(running) as sock,
    ):
        sock.sendall(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        (reply,) = read_replies(sock, 1)
    assert reply.complete and reply.body == b"hello world"
    assert reply.headers["transfer-encoding"] == "chunked"


def test_pipelined_requests_are_each_counted(proxy: Sidecar) -> None:
    with connect(proxy) as sock:
        sock.sendall(post("/a", b"1") + post("/b", b"2") + post("/c", b"3"))
        assert len(read_replies(sock, 3)) == 3
    # A scrape writes the serving process's tally first: no waiting needed.
    assert value(scrape(proxy.url), "mlmon_requests_total", code="200") == 3


def test_a_response_trickling_in_longer_than_the_read_timeout_is_relayed(tmp_path: Path) -> None:
    # The read timeout bounds the wait for each piece of the answer, not the whole answer.
    class Trickling(RawUpstream):
        def _serve(self, conn: socket.socket) -> None:
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                for part in b"hello":
                    time.sleep(0.2)
                    conn.sendall(bytes([part]))

    with (
        Trickling(echo) as upstream,
        sidecar(upstream.url, tmp_path, env={"MLMON_READ_TIMEOUT_S": "0.5"}) as running,
        connect(running) as sock,
    ):
        sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        (reply,) = read_replies(sock, 1)
    assert (reply.status, reply.body) == (200, b"hello")


def test_a_client_reading_slowly_holds_back_the_upstream_and_gets_every_byte(
    tmp_path: Path,
) -> None:
    size = 48 * 1024 * 1024  # well over every socket buffer on the way
    sent_at: list[float] = []

    class Large(RawUpstream):
        def _serve(self, conn: socket.socket) -> None:
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
                conn.sendall(b"x" * size)
                sent_at.append(time.monotonic())

    with (
        Large(echo) as upstream,
        sidecar(upstream.url, tmp_path) as running,
        connect(running) as sock,
    ):
        sock.sendall(b"GET /large HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(1.0)  # not reading: the sidecar must stop reading the upstream too
        reading_from = time.monotonic()
        received = bytearray()
        while (end := received.find(b"\r\n\r\n")) < 0 or len(received) - end - 4 < size:
            data = sock.recv(1 << 20)
            assert data, "closed before the whole body"
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == size and body.count(b"x") == size
    assert sent_at and sent_at[0] > reading_from


def test_keep_alive_lasts_from_the_last_answer_and_an_idle_connection_is_closed(
    proxy: Sidecar,
) -> None:
    # uvicorn's keep-alive timeout (5 s), counted from each answer, not from the first.
    with connect(proxy) as sock:
        for step in range(3):
            if step:
                time.sleep(3)
            sock.sendall(post(f"/k{step}", b""))
            (reply,) = read_replies(sock, 1)
            assert reply.status == 200
        sock.settimeout(8)
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the sidecar
        assert 4 < time.monotonic() - started < 7.5
