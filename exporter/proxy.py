"""The proxied path: read the body, forward, time, hand a copy to the worker, return.

Nothing else happens here: no JSON parsing, no store I/O, no logging calls. The
few label and header decisions made per request are dictionary look-ups.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import uuid
from typing import Any

from exporter import protocols
from exporter.capture import CaptureChannel
from exporter.errors import UpstreamError
from exporter.frames import CapturedExchange
from exporter.metrics import LabelCap, Metrics, Tally
from exporter.serving import ProxiedRequest
from exporter.settings import Settings
from exporter.upstream import Headers, UpstreamPool, UpstreamResponse

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
_NO_PROTOCOL = "none"
# How far behind the metric files the serving process's tally may fall; a scrape of this
# process flushes first, so only other workers' figures can lag, by at most this.
METRICS_FLUSH_INTERVAL_S = 1.0


def new_request_id() -> str:
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


class Proxy:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        channel: CaptureChannel,
        version_cache: dict[str, str],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._channel = channel
        self._versions = version_cache
        self._model_label = LabelCap(settings.max_label_values, settings.models)
        self._version_label = LabelCap(settings.max_label_values)
        self._prefix = settings.upstream_prefix
        self._host_header = _authority(settings).encode("latin-1")
        self._children: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}
        # Request metrics go through a tally written to the (multiprocess) metric files
        # once a second and before a scrape: in-line they cost 110 µs per request.
        self._tally = Tally()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self.pool: UpstreamPool | None = None

    def start(self) -> None:
        """Open the pool and start the metrics flushes; must run on the serving loop."""
        self._loop = asyncio.get_running_loop()
        self._schedule_flush()
        s = self._settings
        self.pool = UpstreamPool(
            s.upstream_host,
            s.upstream_port,
            connect_timeout=s.connect_timeout_s,
            read_timeout=s.read_timeout_s,
            max_idle=s.pool_max_idle,
        )

    def stop(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self.flush_metrics()
        if self.pool is not None:
            self.pool.close()

    def flush_metrics(self) -> None:
        """Write the tallied request metrics; on the serving loop only."""
        self._metrics.in_flight.set(self._in_flight)
        self._tally.flush()

    def flush_metrics_from_thread(self, timeout: float = 1.0) -> None:
        """For the control endpoints (a2wsgi threads): flush on the loop, wait for it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def flush() -> None:
            try:
                self.flush_metrics()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(flush)
        except RuntimeError:  # the loop closed meanwhile
            return
        done.wait(timeout)

    def _schedule_flush(self) -> None:
        assert self._loop is not None
        self._flush_timer = self._loop.call_later(METRICS_FLUSH_INTERVAL_S, self._periodic_flush)

    def _periodic_flush(self) -> None:
        self.flush_metrics()
        self._schedule_flush()

    async def handle(self, request: ProxiedRequest) -> None:
        started = time.perf_counter()
        body = await request.body()
        if body is None:
            if request.too_large:
                _respond_json(request, 413, {"error": "request body larger than max_request_bytes"})
            return  # or the client has gone
        route = protocols.route(request.path, self._settings.protocol)
        forward, client_id, request_headers = self._upstream_headers(request)
        request_id = client_id or _body_id(body, route.protocol) or new_request_id()
        forward.append((b"x-request-id", request_id.encode("latin-1")))

        target = self._prefix + request.raw_path.decode("latin-1")
        if request.query:
            target += "?" + request.query.decode("latin-1")
        self._in_flight += 1
        upstream_started = time.perf_counter()
        response_headers: Headers = []
        try:
            assert self.pool is not None
            response = await self.pool.request(request.method, target, forward, body)
            status, response_body, response_headers = await self._relay(
                response, request_id, request
            )
            upstream_done = time.perf_counter()
        except UpstreamError as error:
            upstream_done = time.perf_counter()
            self._metrics.upstream_errors.labels(error.reason).inc()
            status, response_body = error.status, b""
            _respond_json(
                request,
                error.status,
                {
                    "error": f"upstream {error.reason.replace('_', ' ')}: {error.detail}",
                    "reason": error.reason,
                    "request_id": request_id,
                },
                [(b"x-request-id", request_id.encode("latin-1"))],
            )
        finally:
            self._in_flight -= 1
        finished = time.perf_counter()
        self._observe(
            route,
            status,
            len(body),
            len(response_body),
            finished - started,
            upstream_done - upstream_started,
        )
        if route.protocol is not None:
            self._capture(
                request,
                route,
                request_id,
                (request_headers, body),
                status,
                (response_headers, response_body),
                finished - started,
            )

    def _capture(
        self,
        client: ProxiedRequest,
        route: protocols.Route,
        request_id: str,
        received: tuple[Headers, bytes],
        status: int,
        response: tuple[Headers, bytes],
        latency: float,
    ) -> None:
        (request_headers, body), (response_headers, response_body) = received, response
        # Bodies too large to analyse are not queued: they would only hold memory.
        limit = self._settings.capture_max_bytes
        oversize = ""
        if len(body) > limit:
            oversize, body, response_body = "request", b"", b""
        elif len(response_body) > limit:
            oversize, response_body = "response", b""
        self._channel.offer(
            CapturedExchange(
                received_at=time.time(),
                request_id=request_id,
                method=client.method,
                path=client.path,
                query=client.query,
                protocol=route.protocol or "",
                path_model=route.model,
                path_version=route.model_version,
                request_headers=request_headers,
                request_body=body,
                status=status,
                response_headers=response_headers,
                response_body=response_body,
                latency_s=latency,
                oversize=oversize,
            )
        )

    def _upstream_headers(self, request: ProxiedRequest) -> tuple[Headers, str, Headers]:
        """(headers to forward, the client's request id, the headers to analyse)."""
        host = self._host_header
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
                elif name == b"host" and self._settings.preserve_host:
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

    async def _relay(
        self, response: UpstreamResponse, request_id: str, request: ProxiedRequest
    ) -> tuple[int, bytes, Headers]:
        """Send the upstream response to the client; return its status, body and the
        headers to analyse."""
        headers, has_length, has_id, analysed = _response_headers(response.headers)
        if not has_id:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        try:
            if response.complete:  # usually the whole answer is in by now
                body = b"".join(response.chunks)
                request.respond(response.status, headers, body, has_length=has_length)
                return response.status, body, analysed
            request.start_stream(response.status, headers, has_length=has_length)
            received: list[bytes] = []
            while chunks := await response.next_chunks():
                received.extend(chunks)
                await request.stream(b"".join(chunks))
            request.end_stream()
            return response.status, b"".join(received), analysed
        finally:
            response.release()

    def _observe(
        self,
        route: protocols.Route,
        status: int,
        request_size: int,
        response_size: int,
        total: float,
        upstream: float,
    ) -> None:
        key = (route.model or "", route.model_version or "", route.protocol or "", status)
        children = self._children.get(key)
        if children is None:
            children = self._make_children(route, status)
            if len(self._children) < 10_000:
                self._children[key] = children
        requests, duration, upstream_hist, overhead, req_size, resp_size = children
        tally = self._tally
        tally.inc(requests)
        tally.observe(duration, total)
        tally.observe(upstream_hist, upstream)
        tally.observe(overhead, max(total - upstream, 0.0))
        tally.observe(req_size, request_size)
        tally.observe(resp_size, response_size)

    def _make_children(self, route: protocols.Route, status: int) -> tuple[Any, ...]:
        m = self._metrics
        protocol = route.protocol or _NO_PROTOCOL
        model = self._model_label(route.model or self._settings.model or "unknown")
        version = route.model_version or self._versions.get(model, self._settings.model_version)
        version = self._version_label(version)
        return (
            m.requests.labels(model, version, protocol, str(status)),
            m.request_duration.labels(model, protocol),
            m.upstream_duration.labels(model, protocol),
            m.proxy_overhead.labels(model, protocol),
            m.request_size.labels(model, protocol),
            m.response_size.labels(model, protocol),
        )


def _authority(settings: Settings) -> str:
    port = settings.upstream_port
    return settings.upstream_host if port == 80 else f"{settings.upstream_host}:{port}"


def _body_id(body: bytes, protocol: str | None) -> str:
    # The OIP v2 body id, found without parsing the body: the hot path does no JSON.
    if protocol != "v2" or not body:
        return ""
    match = _BODY_ID.search(body, 0, _ID_SCAN_BYTES)
    return match.group(1).decode("utf-8", "replace") if match else ""


def _response_headers(raw: Headers) -> tuple[Headers, bool, bool, Headers]:
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


def _respond_json(
    request: ProxiedRequest, status: int, payload: dict[str, Any], headers: Headers | None = None
) -> None:
    body = json.dumps(payload).encode()
    request.respond(status, [(b"content-type", b"application/json"), *(headers or [])], body)
