"""A small HTTP/1.1 client for the model server: pooled keep-alive connections.

General clients cost 150-500 µs of CPU per request; this one is an asyncio
protocol around the same `httptools` parser the server side uses, and does only
what a reverse proxy needs: write one buffered request, relay the response, keep
the connection when both sides allow it. The proxied path is a chain of callbacks
(`ResponseSink`), with no task, future or timer per request: each costs a loop
step or a heap operation, and together they were a fifth of the serving
process's CPU. The read timeout is one timer per connection, moved forward only
when it fires.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from typing import Protocol

import httptools

from exporter.analysis.frames import Headers
from exporter.errors import UpstreamError

_METHODS_WITH_CONTENT = frozenset({"POST", "PUT", "PATCH"})


class ResponseSink(Protocol):
    def response_data(self, response: UpstreamResponse) -> None:
        """After each read once the headers are in: `response.chunks` holds the body
        received since the last take, `response.complete` says whether that is all."""

    def response_failed(self, error: UpstreamError) -> None:
        """No (complete) response will come; the connection is closed."""


class UpstreamResponse:
    """A response whose headers have arrived; the body may still be streaming."""

    def __init__(self, connection: _Connection, sink: ResponseSink) -> None:
        self._connection = connection
        self.sink = sink
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.complete = False

    def take_chunks(self) -> list[bytes]:
        chunks, self.chunks = self.chunks, []
        return chunks

    def pause(self) -> None:
        """Stop reading the body until `resume` (the client reads slower than this)."""
        self._connection.pause()

    def resume(self) -> None:
        self._connection.resume()

    def release(self) -> None:
        """Give the connection back to the pool (or close it) once done with the body."""
        self._connection.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._read_timeout = pool.read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._response: UpstreamResponse | None = None
        self._request = b""
        self._reused = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._received_any = False
        self._head_request = False
        self._reusable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        self._deadline = self._loop.time() + self._read_timeout
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol_error", f"invalid HTTP response: {exc}"))
            return
        response = self._response
        # The sink may release this connection and even send the next request on it:
        # nothing here touches the connection after the call.
        if response is not None and response.status:
            response.sink.response_data(response)

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        response = self._response
        if response is None or response.complete:
            return
        if response.status and not self._has_framing(response):
            # A body delimited by the end of the connection (RFC 9112 6.3, rule 8).
            response.complete = True
            response.sink.response_data(response)
            return
        if self._reused and not self._received_any:
            # A pooled connection the server closed while it was idle: once more, fresh.
            self._response = None
            self._pool.open(self._request, self._head_request, response.sink)
            return
        detail = "closed before a complete response"
        if exc is not None:
            detail = f"{detail}: {exc}"
        self._fail(UpstreamError("connection_reset", detail))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        assert response is not None
        response.status = self._parser.get_status_code()
        self._reusable = self._parser.should_keep_alive()
        if self._head_request:
            # httptools cannot be told a HEAD response has no body: complete it here and
            # never reuse the connection, whose parser state is now undefined.
            self._reusable = False
            response.complete = True

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None and not response.complete:
            response.chunks.append(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is not None:
            response.complete = True

    # used by the pool and the response
    def send(self, request: bytes, head_request: bool, sink: ResponseSink, reused: bool) -> None:
        assert self.transport is not None
        self._response = UpstreamResponse(self, sink)
        self._request = request
        self._reused = reused
        self._received_any = False
        self._head_request = head_request
        self._deadline = self._loop.time() + self._read_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
        self.transport.write(request)

    def finish(self) -> None:
        response = self._response
        self._response = None
        self._request = b""
        if response is not None and response.complete and self._reusable and not self.closed:
            self._pool.give_back(self)
        else:
            self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self._deadline = self._loop.time() + self._read_timeout
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _has_framing(self, response: UpstreamResponse) -> bool:
        for name, value in response.headers:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return True
        return False

    def _check_deadline(self) -> None:
        self._timer = None
        response = self._response
        if response is None or response.complete or self.closed:
            return  # idle: the next send arms the timer again
        now = self._loop.time()
        if self._paused or self._deadline > now:
            # Data came since the timer was set, or the client is the slow side.
            later = now + self._read_timeout if self._paused else self._deadline
            self._timer = self._loop.call_at(later, self._check_deadline)
            return
        self._fail(
            UpstreamError("read_timeout", f"no response data within {self._read_timeout:g} s")
        )

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: UpstreamError) -> None:
        response = self._response
        self._response = None
        self.close()
        if response is not None and not response.complete:
            response.sink.response_failed(error)


class UpstreamPool:
    """Keep-alive connections to one host:port, most recently used first."""

    def __init__(
        self, host: str, port: int, *, connect_timeout: float, read_timeout: float, max_idle: int
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._opening: set[asyncio.Task[None]] = set()

    def send(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        sink: ResponseSink,
    ) -> None:
        """Send a request; `sink` hears of the response.

        A pooled connection the server closed while idle fails before any response
        byte; that request is sent once more on a fresh connection.
        """
        request = _serialize(method, target, headers, body)
        head = method == "HEAD"
        connection = self._take_idle()
        if connection is not None:
            connection.send(request, head, sink, reused=True)
        else:
            self.open(request, head, sink)

    def open(self, request: bytes, head: bool, sink: ResponseSink) -> None:
        """Send on a new connection (a task: connecting is the one awaited step)."""
        task = self.loop.create_task(self._open(request, head, sink))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    def give_back(self, connection: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        for task in list(self._opening):
            task.cancel()

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _open(self, request: bytes, head: bool, sink: ResponseSink) -> None:
        try:
            connection = await self._connect()
        except UpstreamError as error:
            sink.response_failed(error)
            return
        connection.send(request, head, sink, reused=False)

    async def _connect(self) -> _Connection:
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Connection(self), self.host, self.port),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(
                "connect_timeout", f"no connection within {self.connect_timeout:g} s"
            ) from None
        except ConnectionRefusedError as exc:
            raise UpstreamError("connect_refused", str(exc)) from None
        except OSError as exc:
            reason = "connect_refused" if exc.errno == errno.ECONNREFUSED else "connect_error"
            raise UpstreamError(reason, str(exc)) from None
        return protocol


def _serialize(
    method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    lines.extend(name + b": " + value for name, value in headers)
    # The request is always sent whole, so it is always framed by its length.
    if body or method in _METHODS_WITH_CONTENT:
        lines.append(b"content-length: " + str(len(body)).encode())
    lines.append(b"")
    lines.append(body)
    return b"\r\n".join(lines)
