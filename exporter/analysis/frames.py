"""What crosses the pipes between the serving and the analysis process.

Length-prefixed pickles: only the two processes of one sidecar write these pipes.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, NamedTuple

# HTTP headers as the serving side has them: (name, value) bytes, names lower-case.
Headers = list[tuple[bytes, bytes]]
FRAME_HEADER = struct.Struct("<I")


class CapturedExchange(NamedTuple):
    """One proxied exchange as the analysis process receives it.

    A tuple, not a dataclass: it is built once per request on each side of the
    pipe, and a frozen dataclass's __init__ cost 10% of the analysis.
    """

    received_at: float
    request_id: str
    method: str
    path: str
    query: bytes
    protocol: str
    path_model: str | None
    path_version: str | None
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    response_body: bytes
    latency_s: float
    # "request" or "response" when that body was above capture_max_bytes and left out
    oversize: str = ""
    role: str = "primary"  # the route that answered (exporter.records.ROLES)
    candidate: str = ""  # its configured name; "" for the primary

    def frame(self) -> bytes:
        return encode_frame(tuple(self))  # a plain tuple: no class reference to pickle


def encode_frame(message: Any) -> bytes:
    """A length-prefixed pickle: the framing of both pipes between the processes."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


class FrameReader:
    """Splits bytes read from a pipe back into the messages `encode_frame` wrote."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages: list[Any] = []
        offset = 0
        while len(buffer) - offset >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + FRAME_HEADER.size + size
            if len(buffer) < end:
                break
            # Only the two processes of this sidecar write these pipes.
            messages.append(pickle.loads(buffer[offset + FRAME_HEADER.size : end]))
            offset = end
        del buffer[:offset]
        return messages
