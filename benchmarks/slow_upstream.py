"""A model server stand-in for load tests: answers every request after a fixed delay.

Built on asyncio + httptools so that the upstream itself costs little CPU and the
figures measure the proxy in front of it. Usage: slow_upstream.py PORT DELAY_MS
"""

from __future__ import annotations

import asyncio
import json
import sys

import httptools
import uvloop

RESPONSE_BODY = json.dumps(
    {
        "model_name": "bench",
        "model_version": "1",
        "id": "x",
        "outputs": [
            {"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}
        ],
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(RESPONSE_BODY)).encode()
    + b"\r\n\r\n"
    + RESPONSE_BODY
)


class _Server(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_complete(self) -> None:
        asyncio.get_running_loop().call_later(self._delay, self._respond)

    def _respond(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(RESPONSE)


async def _serve(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(delay), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), float(sys.argv[2]) / 1000))
