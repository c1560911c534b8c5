"""An upstream that answers with scripted raw bytes, for HTTP framing tests.

`http.server` cannot send a chunked or close-delimited body, a reset mid-body,
or a garbage status line; this one sends exactly the bytes a test gives it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import httptools


@dataclass
class RawRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


# A responder gets the parsed request and returns raw bytes to send, or None to
# reset the connection without answering.
Responder = Callable[[RawRequest], bytes | None]


class _Collector:
    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.url = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class RawUpstream:
    def __init__(self, responder: Responder, *, close_after: bool = False, port: int = 0) -> None:
        self.responder = responder
        self.close_after = close_after
        self.requests: list[RawRequest] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stopped = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                collector = _Collector()
                parser = httptools.HttpRequestParser(collector)
                while not collector.done:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    parser.feed_data(data)
                request = RawRequest(
                    parser.get_method().decode(),
                    collector.url.decode(),
                    collector.headers,
                    b"".join(collector.chunks),
                )
                self.requests.append(request)
                answer = self.responder(request)
                if answer is None:
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    return
                conn.sendall(answer)
                if self.close_after:
                    return
