"""The sidecar's Prometheus metrics, built on a registry by `make_metrics`.

Label values come from bounded sets: `LabelCap` lets through an allow-list, or
the first N distinct values, and folds the rest into `__other__`, so a client
cannot create unbounded time series.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter.names import printable

OTHER = "__other__"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)
# Fine enough to tell a 100 µs proxy from a 300 µs one.
OVERHEAD_BUCKETS = (
    0.00005,
    0.0001,
    0.00015,
    0.0002,
    0.0003,
    0.0005,
    0.00075,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.1,
)
SIZE_BUCKETS = tuple(float(4**k) for k in range(3, 14))  # 64 B .. 64 MiB
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
VALUE_BUCKETS = (
    -100.0,
    -10.0,
    -1.0,
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    2.0,
    5.0,
    10.0,
    100.0,
    1000.0,
)


class LabelCap:
    """Bounds one label's values: an allow-list, else the first `limit` seen."""

    def __init__(self, limit: int, allowed: Iterable[str] = ()) -> None:
        self._allowed = frozenset(allowed)
        self._limit = limit
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        known = self._seen.get(value)
        if known is not None:
            return known
        with self._lock:
            if self._allowed:
                mapped = value if value in self._allowed else OTHER
            else:
                mapped = printable(value) if len(self._seen) < self._limit else OTHER
            if len(self._seen) < self._limit * 4:  # remembers rejects too, but boundedly
                self._seen[value] = mapped
            return mapped


class Tally:
    """Counts and observations gathered in plain Python, written to the metrics in one go.

    In multiprocess mode every `inc` or `observe` takes a lock and writes a memory-mapped
    file: 7 µs for a counter, 20 µs for a histogram, about 110 µs per proxied request
    and 120 µs per analysed exchange. Here each costs a dictionary update, and `flush`
    writes every touched series once. Not thread-safe: one thread tallies and flushes.
    """

    def __init__(self) -> None:
        self._counts: dict[Counter, float] = {}
        self._histograms: dict[Histogram, _HistogramTally] = {}

    def inc(self, counter: Counter, amount: float = 1.0) -> None:
        """`counter` is a labelled child (or a metric without labels)."""
        self._counts[counter] = self._counts.get(counter, 0.0) + amount

    def observe(self, histogram: Histogram, value: float) -> None:
        tally = self._histograms.get(histogram)
        if tally is None:
            tally = self._histograms[histogram] = _HistogramTally(histogram)
        tally.observe(value)

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for tally in self._histograms.values():
            tally.flush()


class _HistogramTally:
    # Written through the histogram's own bucket and sum values (prometheus_client has
    # no public bulk observe); tests/unit/test_metrics.py checks the exposition matches
    # one `observe` per value.
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds: list[float] = histogram._upper_bounds
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        # Bucket i holds bounds[i-1] < value <= bounds[i], as Histogram.observe counts.
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        if not any(self._counts):
            return
        buckets = self._histogram._buckets
        for index, count in enumerate(self._counts):
            if count:
                buckets[index].inc(count)
                self._counts[index] = 0
        self._histogram._sum.inc(self._sum)
        self._sum = 0.0


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_duration: Histogram
    upstream_duration: Histogram
    proxy_overhead: Histogram
    request_size: Histogram
    response_size: Histogram
    in_flight: Gauge
    upstream_errors: Counter
    batch_size: Histogram
    predictions: Counter
    prediction_value: Histogram
    prediction_confidence: Histogram
    non_finite_predictions: Counter
    payload_parse_errors: Counter
    rows_sampled_out: Counter
    feature_issues: Counter
    queue_depth: Gauge
    queue_dropped: Counter
    worker_duration: Histogram
    log_records: Counter
    log_spool_bytes: Gauge
    log_write_duration: Histogram
    model_info: Gauge
    version_first_seen: Gauge


def make_metrics(registry: CollectorRegistry) -> Metrics:
    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, registry=registry)

    def histogram(
        name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(name, doc, labels, registry=registry, buckets=buckets)

    model_protocol = ("model", "protocol")
    return Metrics(
        requests=counter(
            "mlmon_requests",
            "Requests proxied, by response status code.",
            ("model", "model_version", "protocol", "code"),
        ),
        request_duration=histogram(
            "mlmon_request_duration_seconds",
            "End-to-end time in the sidecar, from request read to response sent.",
            model_protocol,
            LATENCY_BUCKETS,
        ),
        upstream_duration=histogram(
            "mlmon_upstream_duration_seconds",
            "Time from forwarding the request to the last byte of the model server's response.",
            model_protocol,
            LATENCY_BUCKETS,
        ),
        proxy_overhead=histogram(
            "mlmon_proxy_overhead_seconds",
            "Time the sidecar adds: end-to-end minus upstream.",
            model_protocol,
            OVERHEAD_BUCKETS,
        ),
        request_size=histogram(
            "mlmon_request_size_bytes", "Request body size.", model_protocol, SIZE_BUCKETS
        ),
        response_size=histogram(
            "mlmon_response_size_bytes", "Response body size.", model_protocol, SIZE_BUCKETS
        ),
        in_flight=Gauge(
            "mlmon_in_flight_requests",
            "Requests being proxied now.",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        upstream_errors=counter(
            "mlmon_upstream_errors",
            "Requests the model server did not answer, by reason.",
            ("reason",),
        ),
        batch_size=histogram(
            "mlmon_batch_size", "Input rows per inference request.", ("model",), BATCH_BUCKETS
        ),
        predictions=counter(
            "mlmon_predictions", "Predicted rows by predicted class.", ("model", "class")
        ),
        prediction_value=histogram(
            "mlmon_prediction_value", "Numeric prediction per row.", ("model",), VALUE_BUCKETS
        ),
        prediction_confidence=histogram(
            "mlmon_prediction_confidence",
            "Score of the predicted class per row.",
            ("model",),
            CONFIDENCE_BUCKETS,
        ),
        non_finite_predictions=counter(
            "mlmon_non_finite_predictions", "Predictions that were NaN or infinite.", ("model",)
        ),
        payload_parse_errors=counter(
            "mlmon_payload_parse_errors",
            "Bodies forwarded but not understood by the protocol adapter.",
            ("protocol", "part", "reason"),
        ),
        rows_sampled_out=counter(
            "mlmon_rows_sampled_out",
            "Input rows neither analysed nor logged: a request had more than "
            "max_rows_per_request rows, and a random sample of them was kept.",
            ("model",),
        ),
        feature_issues=counter(
            "mlmon_feature_issues",
            "Input rows with a data-quality issue, by feature and kind (missing, "
            "missing_field, type_mismatch, out_of_range, unseen_category, unexpected_field).",
            ("model", "feature", "kind"),
        ),
        queue_depth=Gauge(
            "mlmon_log_queue_depth",
            "Exchanges waiting for the background worker.",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        queue_dropped=counter(
            "mlmon_log_queue_dropped",
            "Exchanges not analysed because the worker queue was full (count or bytes).",
            ("reason",),
        ),
        worker_duration=histogram(
            "mlmon_worker_duration_seconds",
            "Time the analysis process took for one drained batch of exchanges "
            "(adapter, features, data quality, prediction metrics).",
            (),
            LATENCY_BUCKETS,
        ),
        log_records=counter(
            "mlmon_log_records",
            "Input-log records by outcome: written to the store, spooled to disk while it "
            "was down, replayed from the spool, dropped (spool full) or failed (refused).",
            ("outcome",),
        ),
        log_spool_bytes=Gauge(
            "mlmon_log_spool_bytes",
            "Bytes of records waiting in the on-disk spool.",
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        log_write_duration=histogram(
            "mlmon_log_write_duration_seconds",
            "Time of one batch write to the input log.",
            (),
            LATENCY_BUCKETS,
        ),
        model_info=Gauge(
            "mlmon_model_info",
            "Model versions seen in responses (value 1).",
            ("model", "model_version"),
            registry=registry,
            multiprocess_mode="max",
        ),
        version_first_seen=Gauge(
            "mlmon_model_version_first_seen_timestamp_seconds",
            "When this sidecar first saw the model answer with this version (Unix time); "
            "the earliest over processes. Staleness alerts compare it with time().",
            ("model", "model_version"),
            registry=registry,
            multiprocess_mode="min",
        ),
    )
