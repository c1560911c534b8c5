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
    """A random (version 4) UUID, formatted without a `uuid.UUID`: a third of its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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

    def handle(self, request: ProxiedRequest) -> None:
        """Called once the request's body is in: forward it; `_InFlight` relays the
        answer from the upstream connection's callbacks."""
        # The request path, kept in few pieces on purpose: it runs for every request, and
        # each further call and argument tuple costs CPU there (README "Proxy overhead").
        if request.too_large:
            _respond_json(request, 413, {"error": "request body larger than max_request_bytes"})
            return
        body = request.body()
        route = protocols.route(request.path, self._settings.protocol)
        upstream = self._primary
        forward, client_id, request_headers = upstream_headers(
            request, upstream.host_header, self._settings.preserve_host
        )
        request_id = client_id or body_id(body, route.protocol) or new_request_id()
        forward.append((b"x-request-id", request_id.encode("latin-1")))
        trial = False
        model = ""
        router = self._router
        if router is not None:
            model = self._model_label(route.model or self._settings.model or "unknown")
            upstream, trial = router.pick(model, request, request_id)
            if upstream.pool is None:  # the naive fallback: the sidecar answers itself
                self._answer_naively(request, route, model, request_id, body)
                return
            if upstream is not self._primary and not self._settings.preserve_host:
                forward[0] = (b"host", upstream.host_header)

        path = request.raw_path.decode("latin-1")
        if request.query:
            path += "?" + request.query.decode("latin-1")
        pool = upstream.pool
        assert pool is not None
        self._in_flight += 1
        in_flight = _InFlight(
            self, request, route, upstream, request_id, request_headers, body, path, forward,
            model, trial,
        )  # fmt: skip
        pool.send(request.method, upstream.prefix + path, forward, body, in_flight)

    def finish(
        self, done: _InFlight, status: int, response: tuple[Headers, bytes], failed: bool
    ) -> None:
        """The client has its answer (or the error): metrics, breaker, capture, shadow."""
        self._in_flight -= 1
        finished = time.perf_counter()
        request, route, upstream, body = done.request, done.route, done.upstream, done.body
        response_body = response[1]
        self._observe(
            route,
            upstream.role,
            status,
            len(body),
            len(response_body),
            finished - request.started,
            finished - done.upstream_started,
        )
        router = self._router
        if router is not None:
            router.outcome(done.model, upstream, failed, done.trial)
        if route.protocol is not None:
            request_id, path, forward = done.request_id, done.path, done.forward
            exchange = self._capture(
                request,
                route,
                request_id,
                (done.request_headers, body),
                status,
                response,
                finished - request.started,
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

    def upstream_failed(self, done: _InFlight, error: UpstreamError) -> None:
        self._metrics.upstream_errors.labels(error.reason, done.upstream.role).inc()
        request = done.request
        if request.response_started:  # mid-body: the client can only see it cut short
            request.abort()
        else:
            _respond_json(
                request,
                error.status,
                {
                    "error": f"upstream {error.reason.replace('_', ' ')}: {error.detail}",
                    "reason": error.reason,
                    "request_id": done.request_id,
                },
                [(b"x-request-id", done.request_id.encode("latin-1"))],
            )
        self.finish(done, error.status, ([], b""), True)

    def _answer_naively(
        self,
        request: ProxiedRequest,
        route: protocols.Route,
        model: str,
        request_id: str,
        body: bytes,
    ) -> None:
        """The fallback without a model: a constant answer from the baseline."""
        assert self._naive is not None and self._router is not None
        status, answer = self._naive.respond(
            route.protocol or "", route.model or self._settings.model or model, body
        )
        headers = [(b"content-type", b"application/json")]
        request.respond(status, [*headers, (b"x-request-id", request_id.encode("latin-1"))], answer)
        elapsed = time.perf_counter() - request.started
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


class _InFlight:
    """A forwarded request: relays its upstream's answer as it arrives (a `ResponseSink`)."""

    __slots__ = (
        "_analysed",
        "_done",
        "_head_sent",
        "_proxy",
        "_received",
        "body",
        "forward",
        "model",
        "path",
        "request",
        "request_headers",
        "request_id",
        "route",
        "trial",
        "upstream",
        "upstream_started",
    )

    def __init__(
        self, proxy: Proxy, request: ProxiedRequest, route: protocols.Route, upstream: Target,
        request_id: str, request_headers: Headers, body: bytes, path: str, forward: Headers,
        model: str, trial: bool,
    ) -> None:  # fmt: skip
        self._proxy = proxy
        self.request = request
        self.route = route
        self.upstream = upstream
        self.request_id = request_id
        self.request_headers = request_headers
        self.body = body
        self.path = path
        self.forward = forward
        self.model = model
        self.trial = trial
        self.upstream_started = time.perf_counter()
        self._head_sent = False
        self._analysed: Headers = []
        self._received: list[bytes] = []
        self._done = False

    def response_data(self, response: UpstreamResponse) -> None:
        if self._done:
            return
        try:
            body = self._relay(response)
        except Exception:
            self._done = True
            response.release()
            self.request.fail(f"Exception while relaying {self.request.method} {self.path}")
            self._proxy.finish(self, 500, ([], b""), True)
            return
        if body is not None:
            self._done = True
            status = response.status
            self._proxy.finish(self, status, (self._analysed, body), status >= 500)

    def response_failed(self, error: UpstreamError) -> None:
        if not self._done:
            self._done = True
            self._proxy.upstream_failed(self, error)

    def _relay(self, response: UpstreamResponse) -> bytes | None:
        """Send what came to the client; the whole body once the response is complete."""
        request = self.request
        if not self._head_sent:
            self._head_sent = True
            headers, has_length, has_id, self._analysed = response_headers(response.headers)
            if not has_id:
                headers.append((b"x-request-id", self.request_id.encode("latin-1")))
            if response.complete:  # usually the whole answer is in by now
                body = b"".join(response.take_chunks())
                response.release()
                request.respond(response.status, headers, body, has_length=has_length)
                return body
            request.start_stream(response.status, headers, has_length=has_length)
        chunks = response.take_chunks()
        self._received.extend(chunks)
        keeping_up = request.stream(b"".join(chunks))
        if not response.complete:
            if not keeping_up:
                response.pause()
                request.when_writable(response.resume)
            return None
        response.release()
        request.end_stream()
        return b"".join(self._received)
