"""Shadow candidates: a copy of each sampled request, sent once the client's answer is on
its way, never awaited by the client.

Each candidate has its own pool (its own timeouts) and a bound on copies in flight; a copy
beyond it is dropped and counted, never queued. Its answer is handed to the analysis like
the primary's, marked role "shadow" and the candidate's name, so it goes through the
same protocol adapter and features and is logged beside the primary's record (the
analysis reads the request once, for both).

Per copy, apart from the HTTP exchange: callbacks from the candidate's pool (as on the
proxied path, no task), and tallies on series looked up once per candidate and model.
"""

from __future__ import annotations

import random
import sys
import time
import traceback

from prometheus_client import Counter, Histogram

from exporter.analysis.frames import CapturedExchange, Headers
from exporter.errors import UpstreamError
from exporter.metrics import Metrics
from exporter.release_settings import ShadowSettings
from exporter.serving.capture import CaptureChannel
from exporter.serving.headers import response_headers
from exporter.serving.targets import Target
from exporter.serving.upstream import UpstreamResponse
from exporter.tally import Tally


class _Candidate:
    def __init__(self, settings: ShadowSettings, target: Target) -> None:
        self.target = target
        self.name = target.name
        self.host = (b"host", target.host_header)
        self.sample = settings.sample
        self.max_in_flight = settings.max_in_flight
        self.in_flight = 0
        self.series: dict[str, _Series] = {}  # by model: bounded, model labels are capped


class _Series:
    """One candidate's series for one model."""

    def __init__(self, metrics: Metrics, model: str, name: str) -> None:
        self._metrics = metrics
        self._model = model
        self._name = name
        # Created at once, at 0: a rate over them is 0, not absent, while nothing is
        # dropped (dashboards and alerts see the candidate from its first copy).
        self.dropped_concurrency = metrics.shadow_dropped.labels(model, name, "concurrency")
        self.dropped_queue = metrics.shadow_dropped.labels(model, name, "queue")
        self.duration: Histogram = metrics.shadow_duration.labels(model, name)
        self._requests: dict[str, Counter] = {}  # bounded: HTTP statuses, timeout, error

    def requests(self, code: str) -> Counter:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = self._metrics.shadow_requests.labels(
                self._model, self._name, code
            )
        return counter


class ShadowSender:
    def __init__(
        self,
        shadows: tuple[ShadowSettings, ...],
        targets: tuple[Target, ...],
        metrics: Metrics,
        channel: CaptureChannel,
        tally: Tally,
        capture_max_bytes: int,
    ) -> None:
        self._candidates = [_Candidate(s, t) for s, t in zip(shadows, targets, strict=True)]
        self._metrics = metrics
        self._channel = channel
        self._tally = tally
        self._limit = capture_max_bytes
        self._stopped = False

    def copy(
        self,
        model: str,
        exchange: CapturedExchange,
        body: bytes,
        target_path: str,
        forward: Headers,
        preserve_host: bool,
    ) -> None:
        """Send the request (`body`: whole, even when `exchange`, as captured, leaves an
        oversize one out) to every sampled candidate; the client has its answer."""
        for candidate in self._candidates:
            if candidate.sample < 1.0 and random.random() >= candidate.sample:
                continue  # sampled out: not a drop
            series = candidate.series.get(model)
            if series is None:
                series = candidate.series[model] = _Series(self._metrics, model, candidate.name)
            if candidate.in_flight >= candidate.max_in_flight:
                self._tally.inc(series.dropped_concurrency)
                continue
            headers = forward if preserve_host else [candidate.host, *forward[1:]]
            candidate.in_flight += 1
            assert candidate.target.pool is not None
            candidate.target.pool.send(
                exchange.method,
                candidate.target.prefix + target_path,
                headers,
                body,
                _Copy(self, candidate, series, exchange),
            )

    def stop(self) -> None:
        """Answers still out are dropped from here on (their pools are the proxy's to
        close): the analysis is stopping."""
        self._stopped = True

    def answered(self, copy: _Copy, status: int, headers: Headers, answer: bytes) -> None:
        copy.candidate.in_flight -= 1
        elapsed = time.perf_counter() - copy.started
        series = copy.series
        self._tally.inc(series.requests(str(status)))
        self._tally.observe(series.duration, elapsed)
        if self._stopped:
            return
        exchange = copy.exchange
        oversize = exchange.oversize or ("response" if len(answer) > self._limit else "")
        shadow = exchange._replace(
            status=status,
            response_headers=response_headers(headers)[3],
            response_body=b"" if oversize else answer,
            latency_s=elapsed,
            oversize=oversize,
            role="shadow",
            candidate=copy.candidate.name,
        )
        if not self._channel.offer(shadow):
            self._tally.inc(series.dropped_queue)

    def failed(self, copy: _Copy, error: UpstreamError) -> None:
        copy.candidate.in_flight -= 1
        code = "timeout" if error.reason.endswith("timeout") else "error"
        self._tally.inc(copy.series.requests(code))
        self._tally.observe(copy.series.duration, time.perf_counter() - copy.started)


class _Copy:
    """One copy's answer, heard through the pool's callbacks: no task, future or loop
    step of its own (a task per copy cost about as much as the rest of sending it)."""

    __slots__ = ("candidate", "chunks", "exchange", "sender", "series", "started")

    def __init__(
        self,
        sender: ShadowSender,
        candidate: _Candidate,
        series: _Series,
        exchange: CapturedExchange,
    ) -> None:
        self.sender, self.candidate, self.series = sender, candidate, series
        self.exchange = exchange
        self.started = time.perf_counter()
        self.chunks: list[bytes] = []

    def response_data(self, response: UpstreamResponse) -> None:
        self.chunks.extend(response.take_chunks())
        if not response.complete:
            return
        response.release()
        # Called from the candidate connection's read: a bug of ours here must cost this
        # copy only, not that connection's next exchanges.
        try:
            self.sender.answered(self, response.status, response.headers, b"".join(self.chunks))
        except Exception:
            _internal_error()

    def response_failed(self, error: UpstreamError) -> None:
        try:
            self.sender.failed(self, error)
        except Exception:
            _internal_error()


def _internal_error() -> None:
    print("mlmon-exporter: internal error while sending a shadow copy:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
