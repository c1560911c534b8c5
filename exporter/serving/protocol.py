"""The sidecar's HTTP server protocol: uvicorn's, with the proxied path taken out of ASGI.

uvicorn's per-request ASGI machinery (scope, receive/send messages, header
checks, head and body written apart) cost about 200 µs of CPU per request at
one connection on the benchmark machine. Control paths still go to the ASGI app;
every other request is a `ProxiedRequest` handed to `Proxy.handle` from the
parser's callback once its body is in, with no task per request: the proxy
answers from the upstream connection's callbacks (README "Proxy overhead").
Connection handling (pipelining, flow control, graceful shutdown) is uvicorn's:
a `ProxiedRequest` stands in for its request cycle, with the attributes that code
reads. The keep-alive timeout is one timer per connection, moved forward only when
it fires, instead of a timer set and cancelled per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from exporter.analysis.frames import Headers

Handler = Callable[["ProxiedRequest"], None]

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
        # Called once the client's socket takes data again (set while a relay waits).
        self.on_writable: Callable[[], None] | None = None
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        request: object = self.cycle
        if type(request) is ProxiedRequest:
            # uvicorn's handling below is for its own cycles.
            self.cycle = None  # type: ignore[assignment]
            if not request.response_complete:
                request.disconnected = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._writable()
        super().connection_lost(exc)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._writable()

    def on_message_begin(self) -> None:
        self._idle_since = None
        super().on_message_begin()

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
            request.start()
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

    def on_response_complete(self) -> None:
        # uvicorn's, but the keep-alive timer is not set anew for every response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            waiting: object = cycle
            if type(waiting) is ProxiedRequest:
                # On the next loop step: starting it here would nest one request's
                # handling inside the end of the one before.
                self.loop.call_soon(waiting.start)
            else:
                self._start_asgi_task(cycle, app)
            return
        self._idle_since = now = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(now + self.timeout_keep_alive, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: the end of its response sets the timer again
        expires = idle_since + self.timeout_keep_alive
        if self.loop.time() >= expires:
            self.transport.close()
        else:
            self._idle_timer = self.loop.call_at(expires, self._check_idle)

    def _writable(self) -> None:
        callback, self.on_writable = self.on_writable, None
        if callback is not None:
            callback()


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
        self.started = time.perf_counter()
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
        self._active = False  # its turn on the connection has come
        self._handled = False
        self.more_body = True
        self.too_large = False
        self.response_started = False
        # Also read or set by uvicorn's connection handling (shutdown).
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False

    # Fed by the protocol's parser callbacks.
    def add_body(self, data: bytes) -> None:
        if self.too_large or self.response_complete:
            return
        self._size += len(data)
        if self._size > self._protocol.max_body:
            self.too_large = True
            self._chunks.clear()
            self._ready()
            return
        self._chunks.append(data)

    def end_body(self) -> None:
        self.more_body = False
        self._ready()

    def start(self) -> None:
        """Its turn has come: handled now if the body is in, else once it is."""
        self._active = True
        if self.disconnected:
            return
        if self.more_body and not self.too_large and self._expect_continue:
            self._transport.write(_CONTINUE)
        self._ready()

    def _ready(self) -> None:
        if not self._active or self._handled or (self.more_body and not self.too_large):
            return
        self._handled = True
        try:
            self._protocol.handler(self)
        except Exception:
            # Raised into the parser, it would become a 400 for the whole connection.
            self.fail(f"Exception while proxying {self.method} {self.path}")

    def body(self) -> bytes:
        """The whole request body (`too_large` unset): one chunk is that very object."""
        return b"".join(self._chunks)

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

    def stream(self, data: bytes) -> bool:
        """Send part of the body; False if the client reads slower than that: then
        stop feeding it until `when_writable`'s callback."""
        if data:  # an empty chunk would end a chunked body
            self._write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        return not self._protocol.flow.write_paused or self.disconnected

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call back once the client's socket takes data again (or the client left)."""
        self._protocol.on_writable = callback

    def end_stream(self) -> None:
        if self._chunked:
            self._write(_LAST_CHUNK)
        self._complete()

    def fail(self, message: str) -> None:
        """Log the exception being handled; a 500 if nothing was sent, else close."""
        _logger.exception(message)
        if self.response_complete:
            return
        if not self.response_started:
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            self.respond(500, headers, b"Internal Server Error", close=True)
        else:
            self.abort()

    def abort(self) -> None:
        """End a response cut short: close the connection."""
        self.keep_alive = False
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
