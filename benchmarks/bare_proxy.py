"""The floor for a Python proxy: uvloop + httptools protocols, bytes both ways unchanged,
one pooled upstream connection per client connection; no metrics, capture or headers.

Not a product: `proxy_overhead.py` runs it beside the sidecar and nginx to show what an
event-loop-level rewrite of the serving path could reach. Usage: bare_proxy.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import cast

import httptools
import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.on_response: Callable[[bytes], None] = lambda raw: None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        raw, self.chunks = b"".join(self.chunks), []
        self.on_response(raw)


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.chunks: list[bytes] = []
        self.upstream: _Upstream | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        raw, self.chunks = b"".join(self.chunks), []
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(raw)
        else:
            asyncio.get_running_loop().create_task(self._connect(raw))

    async def _connect(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(_Upstream, "127.0.0.1", self.upstream_port)
        upstream.on_response = self._respond
        self.upstream = upstream
        assert upstream.transport is not None
        upstream.transport.write(raw)

    def _respond(self, raw: bytes) -> None:
        assert self.transport is not None
        self.transport.write(raw)


async def _serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
