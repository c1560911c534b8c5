"""A small blocking HTTP/1.1 client for the traffic generator: stdlib only, one keep-alive
connection, every socket operation bounded by a timeout, failures classified for counting.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from urllib.parse import urlsplit

# What a server closing an idle keep-alive connection looks like on the next request.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class HttpClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s)://host[:port][/prefix] URL; got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """The response status (body read and discarded). Raises OSError or
        http.client.HTTPException; the connection is then closed and the next call reopens."""
        for attempt in range(2):
            reused = self._connection is not None
            connection = self._connection or self._connect()
            try:
                connection.request(method, self._prefix + path, body, dict(headers or {}))
                response = connection.getresponse()
                response.read()
            except _STALE:
                self.close()
                # Retry once only when the connection was an old one the server may have
                # dropped while idle; a fresh connection failing is a real error.
                if reused and attempt == 0:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            if response.will_close:
                self.close()
            return response.status
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._connection = kind(self._host, self._port, timeout=self._timeout_s)
        return self._connection


def failure_kind(exc: BaseException) -> str:
    """A short, bounded name for a failed call: timeout, refused, connection or protocol."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError):
        return "connection"
    return "protocol"
