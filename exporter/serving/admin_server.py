"""The admin listener: a minimal HTTP/1.1 server for the admin API, apart from the proxied
port (loopback by default), one request per connection.

Bounded everywhere: the head (16 KiB), the body (`admin.max_body_bytes`) and the time a
client may take to send them. With several server processes each binds the port with
SO_REUSEPORT; a switch made by one reaches the others through the route state file.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus

from exporter.release_settings import AdminSettings
from exporter.serving.admin import Admin, AdminAnswer

_HEAD_LIMIT = 16 * 1024
_CLIENT_TIMEOUT_S = 10.0


class AdminServer:
    def __init__(self, settings: AdminSettings, admin: Admin) -> None:
        self._settings = settings
        self._admin = admin
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._client,
            self._settings.host,
            self._settings.port,
            reuse_port=True,
            limit=_HEAD_LIMIT,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_CLIENT_TIMEOUT_S):
                answer = await self._request(reader)
                status = HTTPStatus(answer.status)
                body = answer.encode()
                writer.write(
                    f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                    "connection: close\r\n\r\n".encode("latin-1")
                    + body
                )
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away or was too slow: nothing was changed for it
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> AdminAnswer:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return AdminAnswer(431, {"error": "request head too large"})
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return AdminAnswer(400, {"error": "not an HTTP request"})
        method, target, _ = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return AdminAnswer(411, {"error": "send the body with a content-length"})
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return AdminAnswer(400, {"error": "invalid content-length"})
        if length < 0 or length > self._settings.max_body_bytes:
            return AdminAnswer(413, {"error": f"body over {self._settings.max_body_bytes} bytes"})
        body = await reader.readexactly(length) if length else b""
        path = target.partition("?")[0]
        authorization = headers.get("authorization", "").encode("latin-1")
        return self._admin.handle(method, path, authorization, body)
