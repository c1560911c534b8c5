"""The background worker: everything about an exchange that the client need not wait for.

The proxied path offers each exchange to a `CaptureQueue` bounded by count and by
bytes; when it is full the exchange is dropped and counted, never waited on. One
thread takes exchanges off the queue, runs the protocol adapter and records the
prediction metrics.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass

from exporter import protocols
from exporter.metrics import LabelCap, Metrics
from exporter.protocols.base import AdapterConfig, Exchange, ParsedExchange, PayloadError
from exporter.settings import Settings
from exporter.upstream import Headers


DRAIN_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class CapturedExchange:
    received_at: float
    request_id: str
    method: str
    path: str
    query: bytes
    protocol: str
    path_model: str | None
    path_version: str | None
    request_content_type: bytes
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    response_body: bytes
    latency_s: float
    # "request" or "response" when that body was above capture_max_bytes and left out
    oversize: str = ""

    @property
    def size(self) -> int:
        return len(self.request_body) + len(self.response_body)


class CaptureQueue:
    """A FIFO bounded by item count and total body bytes; `offer` never blocks."""

    def __init__(self, max_items: int, max_bytes: int, metrics: Metrics) -> None:
        self._queue: queue.SimpleQueue[CapturedExchange | None] = queue.SimpleQueue()
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items = 0
        self._bytes = 0
        self._lock = threading.Lock()
        self._depth = metrics.queue_depth
        self._dropped_full = metrics.queue_dropped.labels("items")
        self._dropped_bytes = metrics.queue_dropped.labels("bytes")

    def offer(self, item: CapturedExchange) -> bool:
        size = item.size
        with self._lock:
            if self._items >= self._max_items:
                self._dropped_full.inc()
                return False
            if self._bytes + size > self._max_bytes:
                self._dropped_bytes.inc()
                return False
            self._items += 1
            self._bytes += size
        self._depth.inc()
        self._queue.put(item)
        return True

    def drain(self, wait: float) -> list[CapturedExchange] | None:
        """Everything queued, after waiting up to `wait` seconds for the first item;
        None once closed and empty.

        The worker sleeps between drains instead of being woken per item: a wake-up
        per request costs the serving process more CPU than the analysis itself.
        """
        items: list[CapturedExchange] = []
        closed = False
        try:
            item = self._queue.get(timeout=wait)
            while True:
                if item is None:
                    closed = True
                else:
                    items.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        if items:
            with self._lock:
                self._items -= len(items)
                self._bytes -= sum(i.size for i in items)
            self._depth.dec(len(items))
        if closed and not items:
            return None
        if closed:
            self._queue.put(None)  # seen again after these items are done
        return items

    def close(self) -> None:
        self._queue.put(None)

    def __len__(self) -> int:
        return self._items


class Worker:
    def __init__(self, settings: Settings, metrics: Metrics, queue: CaptureQueue,
                 version_cache: dict[str, str]) -> None:
        self._settings = settings
        self._metrics = metrics
        self._queue = queue
        self._versions = version_cache
        self._model_label = LabelCap(settings.max_label_values, settings.models)
        self._class_label = LabelCap(settings.max_label_values, settings.prediction.classes)
        p, g = settings.prediction, settings.generic
        self._adapter_config = AdapterConfig(
            class_names=p.classes, task=p.task, threshold=p.threshold,
            rows_selector=g.rows, predictions_selector=g.predictions,
            model_selector=g.model, version_selector=g.version)
        self._thread = threading.Thread(target=self._run, name="mlmon-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish what is queued (up to `timeout` seconds), then stop."""
        self._queue.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        while (items := self._queue.drain(wait=1.0)) is not None:
            for item in items:
                started = time.perf_counter()
                try:
                    self.process(item)
                except Exception:  # a bug in an adapter must not stop the worker
                    self._metrics.payload_parse_errors.labels(item.protocol, "request",
                                                              "internal_error").inc()
                self._metrics.worker_duration.observe(time.perf_counter() - started)
            time.sleep(DRAIN_INTERVAL_S)

    def process(self, item: CapturedExchange) -> ParsedExchange | None:
        if item.oversize:
            self._metrics.payload_parse_errors.labels(item.protocol, item.oversize,
                                                      "too_large").inc()
            return None
        exchange = Exchange(
            method=item.method, path=item.path, query=item.query.decode("latin-1"),
            request_headers=_decode_headers(item.request_headers),
            request_body=item.request_body, status=item.status,
            response_headers=_decode_headers(item.response_headers),
            response_body=item.response_body)
        try:
            parsed = protocols.parse(item.protocol, exchange, self._adapter_config)
        except PayloadError as error:
            self._metrics.payload_parse_errors.labels(item.protocol, error.part,
                                                      error.reason).inc()
            return None
        self._record(item, parsed)
        return parsed

    def _record(self, item: CapturedExchange, parsed: ParsedExchange) -> None:
        m = self._metrics
        model = self._model_label(
            item.path_model or parsed.model or self._settings.model or "unknown")
        version = item.path_version or parsed.model_version or self._settings.model_version
        if version and self._versions.get(model) != version:
            previous = self._versions.get(model)
            if previous is not None:
                m.model_info.remove(model, previous)
            self._versions[model] = version
            m.model_info.labels(model, version).set(1)
        if parsed.rows or parsed.tensors:
            m.batch_size.labels(model).observe(
                len(parsed.rows) or max((t.shape[0] for t in parsed.tensors if t.shape),
                                        default=1))
        value_hist = m.prediction_value.labels(model)
        confidence_hist = m.prediction_confidence.labels(model)
        for prediction in parsed.predictions:
            numbers = [x for x in (prediction.value, prediction.score) if x is not None]
            if any(not math.isfinite(x) for x in numbers):
                m.non_finite_predictions.labels(model).inc()
                continue
            if prediction.label is not None:
                m.predictions.labels(model, self._class_label(prediction.label)).inc()
            if prediction.value is not None:
                value_hist.observe(prediction.value)
            if prediction.score is not None:
                confidence_hist.observe(prediction.score)


def _decode_headers(headers: Headers) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
