"""The proxied path: read the body, forward, time, hand a copy to the worker, return.

Nothing else happens here: no JSON parsing, no store I/O, no logging calls. The
few label and header decisions made per request are dictionary look-ups.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from typing import Any

from exporter.analysis import protocols
from exporter.analysis.frames import CapturedExchange, Headers
from exporter.errors import UpstreamError
from exporter.metrics import Metrics
from exporter.serving.capture import CaptureChannel
from exporter.serving.headers import body_id, response_headers, upstream_headers
from exporter.serving.naive import NaiveAnswer
from exporter.serving.protocol import ProxiedRequest
from exporter.serving.router import Router
from exporter.serving.shadow import ShadowSender
from exporter.serving.targets import Target, Targets
from exporter.serving.upstream import UpstreamResponse
from exporter.settings import Settings
from exporter.tally import LabelCap, Tally

_NO_PROTOCOL = "none"
# Requests of a series looked up again while the model's version is not known yet.
_VERSION_LOOKUPS = 1000
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
        *,
        targets: Targets | None = None,
        router: Router | None = None,
        naive: NaiveAnswer | None = None,
        model_label: LabelCap | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._channel = channel
        self._versions = version_cache
        self._model_label = model_label or LabelCap(settings.max_label_values, settings.models)
        self._version_label = LabelCap(settings.max_label_values)
        self._targets = targets or Targets.from_settings(settings)
        self._primary = self._targets.primary
        self._router = router
        self._naive = naive
        self._children: dict[tuple[str, str, str, int, str], tuple[Any, ...]] = {}
        self._unresolved: dict[tuple[str, str, str, int, str], int] = {}
        # Request metrics go through a tally written to the (multiprocess) metric files
        # once a second and before a scrape: in-line they cost 110 µs per request.
        self._tally = Tally()
        self._shown: set[str] = set()  # models whose route gauges are exported
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._shadow: ShadowSender | None = None
        if settings.shadow:
            self._shadow = ShadowSender(
                settings.shadow,
                self._targets.shadows,
                metrics,
                channel,
                self._tally,
                settings.capture_max_bytes,
            )

    def start(self) -> None:
        """Open the pools and start the metrics flushes; must run on the serving loop."""
        self._loop = asyncio.get_running_loop()
        self._schedule_flush()
        for target in self._targets.all():
            target.start()

    def stop(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self.flush_metrics()
        if self._shadow is not None:
            self._shadow.stop()
        for target in self._targets.all():
            target.close()

    @property
    def router(self) -> Router | None:
        return self._router

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
        # The request path, kept in one piece on purpose: it runs for every request, and
        # each further call and argument tuple costs CPU there (README "Proxy overhead").
        started = time.perf_counter()
        body = await request.body()
        if body is None:
            if request.too_large:
                _respond_json(request, 413, {"error": "request body larger than max_request_bytes"})
            return  # or the client has gone
        route = protocols.route(request.path, self._settings.protocol)
        upstream = self._primary
        forward, client_id, request_headers = upstream_headers(
            request, upstream.host_header, self._settings.preserve_host
        )
        request_id = client_id or body_id(body, route.protocol) or new_request_id()
        forward.append((b"x-request-id", request_id.encode("latin-1")))
        trial = failed = False
        router = self._router
        if router is not None:
            model = self._model_label(route.model or self._settings.model or "unknown")
            upstream, trial = router.pick(model, request, request_id)
            if upstream.pool is None:  # the naive fallback: the sidecar answers itself
                await self._answer_naively(request, route, model, request_id, body, started)
                return
            if upstream is not self._primary and not self._settings.preserve_host:
                forward[0] = (b"host", upstream.host_header)

        path = request.raw_path.decode("latin-1")
        if request.query:
            path += "?" + request.query.decode("latin-1")
        self._in_flight += 1
        upstream_started = time.perf_counter()
        response_headers: Headers = []
        try:
            assert upstream.pool is not None
            response = await upstream.pool.request(
                request.method, upstream.prefix + path, forward, body
            )
            status, response_body, response_headers = await self._relay(
                response, request_id, request
            )
            upstream_done = time.perf_counter()
            failed = status >= 500
        except UpstreamError as error:
            upstream_done = time.perf_counter()
            failed = True
            self._metrics.upstream_errors.labels(error.reason, upstream.role).inc()
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
            upstream.role,
            status,
            len(body),
            len(response_body),
            finished - started,
            upstream_done - upstream_started,
        )
        if router is not None:
            router.outcome(model, upstream, failed, trial)
        if route.protocol is not None:
            exchange = self._capture(
                request,
                route,
                request_id,
                (request_headers, body),
                status,
                (response_headers, response_body),
                finished - started,
                upstream,
            )
            if self._shadow is not None:
                self._shadow.copy(
                    self._model_label(route.model or self._settings.model or "unknown"),
                    exchange,
                    body,
                    path,
                    forward,
                    self._settings.preserve_host,
                )

    async def _answer_naively(
        self,
        request: ProxiedRequest,
        route: protocols.Route,
        model: str,
        request_id: str,
        body: bytes,
        started: float,
    ) -> None:
        """The fallback without a model: a constant answer from the baseline."""
        assert self._naive is not None and self._router is not None
        status, answer = self._naive.respond(
            route.protocol or "", route.model or self._settings.model or model, body
        )
        headers = [(b"content-type", b"application/json")]
        request.respond(status, [*headers, (b"x-request-id", request_id.encode("latin-1"))], answer)
        elapsed = time.perf_counter() - started
        naive = self._router.naive
        self._observe(route, naive.role, status, len(body), len(answer), elapsed, 0.0)
        if route.protocol is not None:
            self._capture(request, route, request_id, ([], body), status, (headers, answer),
                          elapsed, naive)  # fmt: skip

    def _capture(
        self,
        client: ProxiedRequest,
        route: protocols.Route,
        request_id: str,
        received: tuple[Headers, bytes],
        status: int,
        response: tuple[Headers, bytes],
        latency: float,
        upstream: Target,
    ) -> CapturedExchange:
        (request_headers, body), (response_headers, response_body) = received, response
        # Bodies too large to analyse are not queued: they would only hold memory.
        limit = self._settings.capture_max_bytes
        oversize = ""
        if len(body) > limit:
            oversize, body, response_body = "request", b"", b""
        elif len(response_body) > limit:
            oversize, response_body = "response", b""
        exchange = CapturedExchange(
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
            role=upstream.role,
            candidate=upstream.name,
        )
        self._channel.offer(exchange)
        return exchange

    async def _relay(
        self, response: UpstreamResponse, request_id: str, request: ProxiedRequest
    ) -> tuple[int, bytes, Headers]:
        """Send the upstream response to the client; return its status, body and the
        headers to analyse."""
        headers, has_length, has_id, analysed = response_headers(response.headers)
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
        answered_by: str,
        status: int,
        request_size: int,
        response_size: int,
        total: float,
        upstream: float,
    ) -> None:
        key = (route.model or "", route.model_version or "", route.protocol or "", status,
               answered_by)  # fmt: skip
        children = self._children.get(key)
        if children is None:
            children, version_known = self._make_children(route, status, answered_by)
            # One rule for the version everywhere (path, else what the model's responses
            # name, else the setting): until the analysis has read a response, the label
            # is not fixed, so the children are looked up again.
            # A model that never names a version is settled after a while: its label
            # stays the setting's, and the lookups stop.
            if len(self._unresolved) >= 10_000:  # paths come from clients: bounded
                self._unresolved.clear()
            misses = self._unresolved[key] = self._unresolved.get(key, 0) + 1
            if (version_known or misses > _VERSION_LOOKUPS) and len(self._children) < 10_000:
                self._children[key] = children
                self._unresolved.pop(key, None)
        requests, duration, upstream_hist, overhead, req_size, resp_size = children
        tally = self._tally
        tally.inc(requests)
        tally.observe(duration, total)
        tally.observe(upstream_hist, upstream)
        tally.observe(overhead, max(total - upstream, 0.0))
        tally.observe(req_size, request_size)
        tally.observe(resp_size, response_size)

    def _make_children(
        self, route: protocols.Route, status: int, answered_by: str
    ) -> tuple[tuple[Any, ...], bool]:
        m = self._metrics
        protocol = route.protocol or _NO_PROTOCOL
        model = self._model_label(route.model or self._settings.model or "unknown")
        if self._router is not None and model not in self._shown:
            self._shown.add(model)
            self._router.state.show(model)
        learned = self._versions.get(model)
        version = route.model_version or learned or self._settings.model_version
        known = bool(route.model_version or learned or route.protocol is None)
        version = self._version_label(version)
        return (
            m.requests.labels(model, version, protocol, str(status), answered_by),
            m.request_duration.labels(model, protocol, answered_by),
            m.upstream_duration.labels(model, protocol),
            m.proxy_overhead.labels(model, protocol),
            m.request_size.labels(model, protocol),
            m.response_size.labels(model, protocol),
        ), known


def _respond_json(
    request: ProxiedRequest, status: int, payload: dict[str, Any], headers: Headers | None = None
) -> None:
    body = json.dumps(payload).encode()
    request.respond(status, [(b"content-type", b"application/json"), *(headers or [])], body)
