"""Builds `Exchange` objects for the adapter tests."""

from __future__ import annotations

import json
from typing import Any

from exporter.analysis.protocols import parse
from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    ParsedExchange,
)


def parse_strict(protocol: str, exchange: Exchange, config: AdapterConfig) -> ParsedExchange:
    """`parse`, raising the response's error too: these tests look at each part's errors."""
    parsed = parse(protocol, exchange, config)
    if parsed.response_error is not None:
        raise parsed.response_error
    return parsed


def body(value: Any) -> bytes:
    """Bytes as given; anything else as JSON (NaN/Infinity tokens allowed)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def exchange(
    request: Any,
    response: Any = b"",
    *,
    path: str = "/",
    status: int = 200,
    request_headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
) -> Exchange:
    return Exchange(
        method="POST",
        path=path,
        query="",
        request_headers=(
            {"content-type": "application/json"} if request_headers is None else request_headers
        ),
        request_body=body(request),
        status=status,
        response_headers=(
            {"content-type": "application/json"} if response_headers is None else response_headers
        ),
        response_body=body(response),
    )
