"""Shadow candidates: a copy of each sampled request, sent once the client's answer is on
its way, never awaited by the client.

Each candidate has its own pool (its own timeouts) and a bound on copies in flight; a copy
beyond it is dropped and counted, never queued. Its answer is handed to the analysis like
the primary's, marked role "shadow" and the candidate's name, so it goes through the
same protocol adapter and features and is logged beside the primary's record (the
analysis reads the request once, for both).

Per copy, apart from the HTTP exchange: one task, and tallies on series looked up once
per candidate and model.
"""

from __future__ import annotations

import asyncio
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
        self._tasks: set[asyncio.Task[None]] = set()

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
        loop: asyncio.AbstractEventLoop | None = None
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
            loop = loop or asyncio.get_running_loop()
            target = candidate.target.prefix + target_path
            task = loop.create_task(self._send(candidate, series, exchange, body, target, headers))
            self._tasks.add(task)  # a reference until done: asyncio keeps only weak ones
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug of ours: said, and only this copy is lost
            print("mlmon-exporter: internal error while sending a shadow copy:", file=sys.stderr)
            traceback.print_exception(error, file=sys.stderr)

    def stop(self) -> None:
        """Cancel the copies still out (their pools are the proxy's to close)."""
        for task in list(self._tasks):
            task.cancel()

    async def _send(
        self,
        candidate: _Candidate,
        series: _Series,
        exchange: CapturedExchange,
        body: bytes,
        target: str,
        headers: Headers,
    ) -> None:
        started = time.perf_counter()
        try:
            pool = candidate.target.pool
            assert pool is not None
            response = await pool.request(exchange.method, target, headers, body)
            try:
                chunks: list[bytes] = []
                while more := await response.next_chunks():
                    chunks.extend(more)
            finally:
                response.release()
            status, answer = response.status, b"".join(chunks)
            code = str(status)
        except UpstreamError as error:
            code = "timeout" if error.reason.endswith("timeout") else "error"
            status, answer = error.status, b""
        finally:
            candidate.in_flight -= 1
        elapsed = time.perf_counter() - started
        self._tally.inc(series.requests(code))
        self._tally.observe(series.duration, elapsed)
        if code in ("timeout", "error"):
            return
        analysed = response_headers(response.headers)[3]
        oversize = exchange.oversize or ("response" if len(answer) > self._limit else "")
        shadow = exchange._replace(
            status=status,
            response_headers=analysed,
            response_body=b"" if oversize else answer,
            latency_s=elapsed,
            oversize=oversize,
            role="shadow",
            candidate=candidate.name,
        )
        if not self._channel.offer(shadow):
            self._tally.inc(series.dropped_queue)
