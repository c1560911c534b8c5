"""A small HTTP/1.1 client for the model server: pooled keep-alive connections.

General clients cost 150-500 µs of CPU per request; this one is an asyncio
protocol around the same `httptools` parser the server side uses, and does only
what a reverse proxy needs: write one buffered request, stream the response back,
keep the connection when both sides allow it. Timeouts are timer handles, not
tasks, because `asyncio.wait_for` alone costs more than the rest of a request.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence

import httptools

from exporter.analysis.frames import Headers
from exporter.errors import UpstreamError

_METHODS_WITH_CONTENT = frozenset({"POST", "PUT", "PATCH"})


class UpstreamResponse:
    """A response whose headers have arrived; the body may still be streaming."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.complete = False

    async def next_chunks(self) -> list[bytes]:
        """Body chunks received since the last call; [] once the body is complete."""
        if not self.chunks and not self.complete:
            await self._connection.wait_for_body()
        chunks, self.chunks = self.chunks, []
        return chunks

    def release(self) -> None:
        """Give the connection back to the pool (or close it) once done with the body."""
        self._connection.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._response: UpstreamResponse | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._received_any = False
        self._head_request = False
        self._reusable = True
        self._error: UpstreamError | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol_error", f"invalid HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is None or response.complete:
            return
        if response.status and not self._has_framing(response):
            # A body delimited by the end of the connection (RFC 9112 6.3, rule 8).
            self.on_message_complete()
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
            self.on_message_complete()
            return
        self._wake()

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None and not response.complete:
            response.chunks.append(body)
            self._wake()

    def on_message_complete(self) -> None:
        response = self._response
        if response is not None and not response.complete:
            response.complete = True
            self._wake()

    # used by the pool and the response
    def send(self, request: bytes, head_request: bool, read_timeout: float) -> UpstreamResponse:
        assert self.transport is not None
        self._response = UpstreamResponse(self)
        self._received_any = False
        self._head_request = head_request
        self._error = None
        self._read_timeout = read_timeout
        self.transport.write(request)
        return self._response

    async def wait_for_headers(self) -> None:
        while self._response is not None and not self._response.status:
            await self._wait()

    async def wait_for_body(self) -> None:
        await self._wait()

    def finish(self) -> None:
        response = self._response
        self._response = None
        if response is not None and response.complete and self._reusable and not self.closed:
            self._pool.give_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def received_any(self) -> bool:
        return self._received_any

    def _has_framing(self, response: UpstreamResponse) -> bool:
        for name, value in response.headers:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return True
        return False

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        if self.closed:
            raise UpstreamError("connection_reset", "connection closed")
        waiter = self._waiter = self._loop.create_future()
        self._timer = self._loop.call_later(self._read_timeout, self._on_timeout)
        try:
            await waiter
        finally:
            self._timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _on_timeout(self) -> None:
        self._fail(
            UpstreamError("read_timeout", f"no response data within {self._read_timeout:g} s")
        )
        self.close()


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

    async def request(
        self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send a request; return once the response headers are in.

        A pooled connection the server closed while idle fails before any response
        byte; that request is sent once more on a fresh connection.
        """
        request = _serialize(method, target, headers, body)
        head = method == "HEAD"
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, request, head)
            except UpstreamError as error:
                if error.reason != "connection_reset" or connection.received_any:
                    raise
        return await self._exchange(await self._connect(), request, head)

    def give_back(self, connection: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _exchange(
        self, connection: _Connection, request: bytes, head: bool
    ) -> UpstreamResponse:
        response = connection.send(request, head, self.read_timeout)
        try:
            await connection.wait_for_headers()
        except BaseException:
            connection.close()
            raise
        return response

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
