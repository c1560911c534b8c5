"""Real HTTP model servers on 127.0.0.1 for tests that put the sidecar in front.

    with ModelServer("v2", model="iris") as server:
        ...  # send traffic to the sidecar whose upstream is server.url
        assert server.requests[0].headers == [...]

HTTP/1.1 with keep-alive and an exact Content-Length on every answer; request
bodies may also arrive chunked. Every answer carries `x-upstream-served: 1` and
`x-model-server: <protocol>` so response-header pass-through can be checked.
Failures are scripted: `fail_next` (an HTTP error), `reset_next` (the
connection is reset without an answer), `set_delay` (a slow model).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.model_apps import APPS, AppRequest

_SCRIPTED_BODY = b'{"error": "scripted failure"}'


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]  # as received: original case and order
    body: bytes


@dataclass(frozen=True)
class _Failure:
    status: int | None  # None: reset the connection
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class ModelServer:
    def __init__(
        self, protocol: str, *, model: str = "demo", version: str = "1", delay_s: float = 0.0
    ) -> None:
        if protocol not in APPS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(APPS)}")
        self.protocol, self.model, self.version = protocol, model, version
        self._delay_s = delay_s
        self._failures: list[_Failure] = []
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def start(self) -> ModelServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def fail_next(
        self,
        status: int,
        body: bytes = _SCRIPTED_BODY,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next request with `status` instead of calling the model."""
        with self._lock:
            self._failures.append(_Failure(status, body, tuple((headers or {}).items())))

    def reset_next(self) -> None:
        """Reset the next request's connection without answering."""
        with self._lock:
            self._failures.append(_Failure(None))

    def set_delay(self, seconds: float) -> None:
        self._delay_s = seconds

    def _arrived(self, request: RecordedRequest) -> tuple[_Failure | None, float]:
        with self._lock:
            self._requests.append(request)
            return (self._failures.pop(0) if self._failures else None), self._delay_s


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ModelServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Idle keep-alive connections would otherwise keep handler threads alive.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle client connection is dropped after this
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except ValueError:
            # The rest of the body is still on the wire: this connection is done.
            self.close_connection = True
            self._send(400, b'{"error": "unreadable body"}', (("Connection", "close"),))
            return
        recorded = RecordedRequest(self.command, path, query, list(self.headers.items()), body)
        failure, delay = owner._arrived(recorded)
        if delay:
            time.sleep(delay)
        if failure is None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload = self._answer(AppRequest(self.command, path, headers, body))
            self._send(status, json.dumps(payload).encode(), ())
        elif failure.status is None:
            self._reset()
        else:
            self._send(failure.status, failure.body, failure.headers)

    def _answer(self, request: AppRequest) -> tuple[int, Any]:
        owner = self.server.owner
        try:
            return APPS[owner.protocol](request, owner.model, owner.version)
        except Exception as exc:  # whatever the body, the server answers
            return 400, {"error": f"{type(exc).__name__}: {exc}"[:500]}

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length)

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-upstream-served", "1")
        self.send_header("x-model-server", self.server.owner.protocol)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        # Linger 0: closing sends a TCP RST instead of a clean FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
