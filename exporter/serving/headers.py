"""What the proxy forwards of the headers in each direction, and what it hands to the
analysis: hop-by-hop fields dropped (RFC 9110 7.6.1, and those `Connection` names), the
host named, the request id found. Plain functions over header lists: the request path
calls them once per request, so they stay look-ups and one pass each.
"""

from __future__ import annotations

import re

from exporter.analysis.frames import Headers
from exporter.serving.protocol import ProxiedRequest

# RFC 9110 7.6.1: connection-specific fields are not forwarded in either direction.
_HOP_BY_HOP = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding",
     b"upgrade"}
)  # fmt: skip
_RESPONSE_DROP = _HOP_BY_HOP
# The proxy buffers the request (so Expect and framing are its own) and names the host.
_REQUEST_DROP = _HOP_BY_HOP | {b"expect", b"content-length", b"host"}
# The only headers the protocol adapters read: nothing else (no credentials) is handed
# to the analysis process.
_ANALYSED = frozenset({b"content-type", b"inference-header-content-length"})
_BODY_ID = re.compile(rb'[{,]\s*"id"\s*:\s*"((?:[^"\\]){1,256})"')
_ID_SCAN_BYTES = 64 * 1024


def upstream_headers(
    request: ProxiedRequest, host: bytes, preserve_host: bool
) -> tuple[Headers, str, Headers]:
    """(headers to forward, the client's request id, the headers to analyse)."""
    forward: Headers = []
    analysed: Headers = []
    client_id = ""
    connection_tokens: list[bytes] = []
    for name, value in request.headers:
        if name in _ANALYSED:
            analysed.append((name, value))
        if name in _REQUEST_DROP:
            if name == b"connection":
                connection_tokens.extend(t.strip().lower() for t in value.split(b","))
            elif name == b"host" and preserve_host:
                host = value
            continue
        if name == b"x-request-id":
            client_id = value.decode("latin-1")
            continue
        if name == b"ce-id" and not client_id:
            client_id = value.decode("latin-1")
        forward.append((name, value))
    if connection_tokens:
        named = set(connection_tokens)
        forward = [(n, v) for n, v in forward if n not in named]
    forward.insert(0, (b"host", host))
    client = request.client
    if client:
        forward.append((b"x-forwarded-for", client[0].encode("latin-1")))
    return forward, client_id, analysed


def body_id(body: bytes, protocol: str | None) -> str:
    # The OIP v2 body id, found without parsing the body: the hot path does no JSON.
    if protocol != "v2" or not body:
        return ""
    match = _BODY_ID.search(body, 0, _ID_SCAN_BYTES)
    return match.group(1).decode("utf-8", "replace") if match else ""


def response_headers(raw: Headers) -> tuple[Headers, bool, bool, Headers]:
    """(end-to-end headers for the client, has content-length, has x-request-id,
    headers to analyse)."""
    connection_named: set[bytes] = set()
    for name, value in raw:
        if name.lower() == b"connection":
            connection_named.update(t.strip().lower() for t in value.split(b","))
    headers: Headers = []
    analysed: Headers = []
    has_length = has_id = False
    for name, value in raw:
        lowered = name.lower()
        if lowered in _ANALYSED:
            analysed.append((lowered, value))
        if lowered in _RESPONSE_DROP or lowered in connection_named:
            continue
        if lowered == b"content-length":
            has_length = True
        elif lowered == b"x-request-id":
            has_id = True
        headers.append((name, value))
    return headers, has_length, has_id, analysed
