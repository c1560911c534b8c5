"""The sidecar's HTTP server protocol: uvicorn's, with the proxied path taken out of ASGI.

uvicorn's per-request ASGI machinery (scope, receive/send messages, header
checks, head and body written apart) cost about 200 µs of CPU per request at
one connection on the benchmark machine, more than everything else the serving
process does. Control paths still go to the ASGI app; every other request is a
`ProxiedRequest` handed straight to `Proxy.handle`, which answers with one write.
Connection handling (keep-alive, pipelining, flow control, graceful shutdown) is
uvicorn's: a `ProxiedRequest` stands in for its request cycle, with the
attributes that code reads.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from exporter.analysis.frames import Headers

Handler = Callable[["ProxiedRequest"], Awaitable[None]]

CONTROL_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/schema", "/feedback"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONNECTION_CLOSE = b"connection: close\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_logger = logging.getLogger("uvicorn.error")


class SidecarHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; requests outside CONTROL_PATHS go to the proxy."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        sidecar = _find_sidecar(self.app)
        self.handler: Handler = sidecar.proxy.handle
        self.max_body: int = sidecar.settings.max_request_bytes

    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser.should_upgrade() and self._should_upgrade():
            super().on_headers_complete()
            return
        parsed = httptools.parse_url(self.url)
        raw_path: bytes = parsed.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        if path in CONTROL_PATHS:
            super().on_headers_complete()
            return
        http_version = parser.get_http_version()
        existing = self.cycle
        request = ProxiedRequest(
            self,
            method=parser.get_method().decode("ascii"),
            path=path,
            raw_path=raw_path,
            query=parsed.query or b"",
            headers=self.headers,
            client=self.client,
            http_10=http_version == "1.0",
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            expect_continue=self.expect_100_continue,
        )
        self.cycle = request  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._start_asgi_task(request, self.app)  # type: ignore[arg-type]
        else:
            # Pipelined: answered in order once the request before it is done.
            self.flow.pause_reading()
            self.pipeline.appendleft((request, self.app))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        request: object = self.cycle
        if type(request) is ProxiedRequest:
            request.add_body(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        request: object = self.cycle
        if type(request) is ProxiedRequest:
            request.end_body()
        else:
            super().on_message_complete()


class ProxiedRequest:
    """One proxied request and its response, in place of uvicorn's request cycle."""

    def __init__(
        self,
        protocol: SidecarHttpProtocol,
        *,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: Headers,
        client: tuple[str, int] | None,
        http_10: bool,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.client = client
        self._protocol = protocol
        self._transport = protocol.transport
        self._http_10 = http_10
        self._expect_continue = expect_continue
        self._chunks: list[bytes] = []
        self._size = 0
        self._chunked = False
        self.more_body = True
        self.too_large = False
        self.response_started = False
        # Also read or set by uvicorn's connection handling (shutdown, connection_lost).
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.message_event = asyncio.Event()  # set when the body is in, too large or gone

    # Fed by the protocol's parser callbacks.
    def add_body(self, data: bytes) -> None:
        if self.too_large or self.response_complete:
            return
        self._size += len(data)
        if self._size > self._protocol.max_body:
            self.too_large = True
            self._chunks.clear()
            self.message_event.set()
            return
        self._chunks.append(data)

    def end_body(self) -> None:
        self.more_body = False
        self.message_event.set()

    async def run_asgi(self, app: object) -> None:
        """Named as uvicorn calls a request cycle; `app` is not used."""
        try:
            await self._protocol.handler(self)
        except Exception:
            _logger.exception("Exception while proxying %s %s", self.method, self.path)
            if not self.response_started:
                self.respond(
                    500,
                    [(b"content-type", b"text/plain; charset=utf-8")],
                    b"Internal Server Error",
                    close=True,
                )
            else:
                self._transport.close()
        finally:
            if not self.response_complete:
                self._complete()

    async def body(self) -> bytes | None:
        """The whole request body; None if it is over the limit or the client left."""
        if self.more_body and not self.too_large and not self.disconnected:
            if self._expect_continue and not self._transport.is_closing():
                self._transport.write(_CONTINUE)
            await self.message_event.wait()
        if self.too_large or self.disconnected:
            return None
        return b"".join(self._chunks)  # one chunk: that very object, no copy

    def respond(
        self, status: int, headers: Headers, body: bytes, *, has_length: bool = False,
        close: bool = False,
    ) -> None:  # fmt: skip
        """The whole response in one write; `headers` are end-to-end headers, a
        content-length among them only if `has_length`."""
        if close:
            self.keep_alive = False
        head = self._head(status, headers)
        if not has_length and self._may_have_body(status):
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if self.method != "HEAD":
            head.append(body)
        self._write(b"".join(head))
        self._complete()

    def start_stream(self, status: int, headers: Headers, *, has_length: bool) -> None:
        """Send the head of a response whose body follows in `stream` calls."""
        if not has_length and self._may_have_body(status):
            if self._http_10:
                self.keep_alive = False  # an HTTP/1.0 client reads to the end of the connection
            else:
                self._chunked = True
        head = self._head(status, headers)
        if self._chunked:
            head.append(_CHUNKED)
        head.append(b"\r\n")
        self._write(b"".join(head))

    async def stream(self, data: bytes) -> None:
        if not data:  # an empty chunk would end a chunked body
            return
        self._write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        flow = self._protocol.flow
        if flow.write_paused and not self.disconnected:
            await flow.drain()

    def end_stream(self) -> None:
        if self._chunked:
            self._write(_LAST_CHUNK)
        self._complete()

    def _head(self, status: int, headers: Headers) -> list[bytes]:
        self.response_started = True
        self._expect_continue = False
        head = [STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status]
        for name, value in headers:
            head.append(b"%b: %b\r\n" % (name, value))
        if not self.keep_alive:
            head.append(_CONNECTION_CLOSE)
        return head

    def _may_have_body(self, status: int) -> bool:
        return self.method != "HEAD" and status >= 200 and status not in (204, 304)

    def _write(self, data: bytes) -> None:
        if not self.disconnected and not self._transport.is_closing():
            self._transport.write(data)

    def _complete(self) -> None:
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self._transport.close()
        self._protocol.on_response_complete()


def _find_sidecar(app: Any) -> Any:
    """The Sidecar under whatever middleware uvicorn wrapped around it."""
    while not hasattr(app, "proxy"):
        app = getattr(app, "app", None)
        if app is None:
            raise RuntimeError("SidecarHttpProtocol serves only the mlmon Sidecar app")
    return app
