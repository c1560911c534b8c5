"""The sidecar's Prometheus metrics, built on a registry by `make_metrics`.

Label values come from bounded sets (`exporter.tally.LabelCap`), so a client cannot
create unbounded time series; values are tallied in memory and written in one go
(`exporter.tally.Tally`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
ABS_DIFF_BUCKETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
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
    analysis_errors: Counter
    rows_sampled_out: Counter
    feature_issues: Counter
    queue_depth: Gauge
    queue_dropped: Counter
    worker_duration: Histogram
    log_records: Counter
    log_spool_bytes: Gauge
    log_store_refusals: Counter
    log_write_duration: Histogram
    model_info: Gauge
    version_first_seen: Gauge
    shadow_requests: Counter
    shadow_dropped: Counter
    shadow_duration: Histogram
    shadow_agreement: Counter
    shadow_abs_diff: Histogram
    route_active: Gauge
    route_switches: Counter
    admin_requests: Counter


def make_metrics(registry: CollectorRegistry) -> Metrics:
    # Long, and deliberately one function: a table of declarations, one per family, read
    # top to bottom like the README's metric table; splitting it would only scatter them.
    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, registry=registry)

    def histogram(
        name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(name, doc, labels, registry=registry, buckets=buckets)

    model_protocol = ("model", "protocol")
    model_candidate = ("model", "candidate")
    return Metrics(
        requests=counter(
            "mlmon_requests",
            "Requests proxied, by response status code and the route that answered "
            "(primary, canary, fallback).",
            ("model", "model_version", "protocol", "code", "route"),
        ),
        request_duration=histogram(
            "mlmon_request_duration_seconds",
            "End-to-end time in the sidecar, from request read to response sent.",
            ("model", "protocol", "route"),
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
            "Requests the model server did not answer, by reason and route.",
            ("reason", "route"),
        ),
        batch_size=histogram(
            "mlmon_batch_size", "Input rows per inference request.", ("model",), BATCH_BUCKETS
        ),
        predictions=counter(
            "mlmon_predictions",
            "Predicted rows by predicted class and the route that answered.",
            ("model", "class", "route"),
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
        analysis_errors=counter(
            "mlmon_analysis_errors",
            "Exchanges the analysis failed on by a bug of its own (traceback on stderr); "
            "their records are lost, other exchanges' are not.",
            ("protocol",),
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
        log_store_refusals=counter(
            "mlmon_log_store_refusals",
            "Writes the input log refused for good (credentials, Elasticsearch flavor), by "
            "HTTP status; the records wait in the spool until it accepts them.",
            ("status",),
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
        shadow_requests=counter(
            "mlmon_shadow_requests",
            "Copies of requests answered by a shadow candidate, by HTTP status (or timeout, "
            "error); the client never waits for them.",
            ("model", "candidate", "code"),
        ),
        shadow_dropped=counter(
            "mlmon_shadow_dropped",
            "Copies not sent to a shadow (concurrency: max_in_flight reached) or whose "
            "answer was not analysed (queue: the analysis hand-over was full).",
            ("model", "candidate", "reason"),
        ),
        shadow_duration=histogram(
            "mlmon_shadow_duration_seconds",
            "Time a shadow candidate took to answer a copy.",
            model_candidate,
            LATENCY_BUCKETS,
        ),
        shadow_agreement=counter(
            "mlmon_shadow_agreement",
            "Rows whose shadow predicted class agrees with the primary's, or not.",
            ("model", "candidate", "result"),
        ),
        shadow_abs_diff=histogram(
            "mlmon_shadow_prediction_abs_diff",
            "Absolute difference between the shadow's and the primary's numeric "
            "prediction or probability, per row.",
            model_candidate,
            ABS_DIFF_BUCKETS,
        ),
        route_active=Gauge(
            "mlmon_route_active",
            "1 for the route answering a model's traffic now (primary, or fallback when "
            "switched), 0 for the other.",
            ("model", "route"),
            registry=registry,
            multiprocess_mode="livemax",
        ),
        route_switches=counter(
            "mlmon_route_switches",
            "Switches of a model's traffic between primary and fallback, by reason (admin, "
            "alert, alert_resolved, circuit_breaker, circuit_recovered).",
            ("model", "from_route", "to_route", "reason"),
        ),
        admin_requests=counter(
            "mlmon_admin_requests",
            "Calls to the admin listener, by endpoint and HTTP status.",
            ("endpoint", "code"),
        ),
    )
