from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import make_metrics
from exporter.tally import OTHER, LabelCap, Tally


def test_label_cap_lets_the_first_values_through_then_folds_the_rest() -> None:
    cap = LabelCap(limit=2)
    assert [cap(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]


def test_label_cap_with_an_allow_list_only_lets_those_through() -> None:
    cap = LabelCap(limit=100, allowed=("iris", "credit"))
    assert [cap(v) for v in ("iris", "x", "credit")] == ["iris", OTHER, "credit"]


def test_label_cap_memory_is_bounded_under_a_flood_of_new_values() -> None:
    cap = LabelCap(limit=3)
    for i in range(10_000):
        cap(f"client-made-{i}")
    assert len(cap._seen) <= 12


def test_make_metrics_on_a_fresh_registry_uses_the_documented_names() -> None:
    registry = CollectorRegistry()
    make_metrics(registry)
    names = {metric.name for metric in registry.collect()}
    for expected in (
        "mlmon_requests",
        "mlmon_request_duration_seconds",
        "mlmon_upstream_duration_seconds",
        "mlmon_proxy_overhead_seconds",
        "mlmon_request_size_bytes",
        "mlmon_response_size_bytes",
        "mlmon_in_flight_requests",
        "mlmon_batch_size",
        "mlmon_upstream_errors",
        "mlmon_predictions",
        "mlmon_prediction_value",
        "mlmon_prediction_confidence",
        "mlmon_non_finite_predictions",
        "mlmon_payload_parse_errors",
        "mlmon_log_queue_depth",
        "mlmon_model_info",
        "mlmon_model_version_first_seen_timestamp_seconds",
    ):
        assert expected in names


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


def test_a_tally_writes_what_one_observe_and_inc_per_value_would() -> None:
    # Values on bucket bounds, between them, below the first and past the last.
    values = [0.0005, 0.0004, 0.00051, 0.001, 2.5, 59.9, 60.0, 61.0, 1e9, 0.0, 0.0075]
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    expected, metrics = make_metrics(direct), make_metrics(tallied)
    tally = Tally()
    for round_ in range(2):  # a second flush adds to the first
        for value in values:
            expected.request_duration.labels("m", "v2", "primary").observe(value)
            expected.requests.labels("m", "1", "v2", "200", "primary").inc()
            tally.observe(metrics.request_duration.labels("m", "v2", "primary"), value)
            tally.inc(metrics.requests.labels("m", "1", "v2", "200", "primary"))
        expected.batch_size.labels("m").observe(3)
        tally.observe(metrics.batch_size.labels("m"), 3)
        assert _samples(tallied) != _samples(direct)  # nothing written before the flush
        tally.flush()
        # Sums may differ in the last bits: the tally adds in another order.
        got, want = _samples(tallied), _samples(direct)
        assert [s[:2] for s in got] == [s[:2] for s in want]
        assert [s[2] for s in got] == pytest.approx([s[2] for s in want], rel=1e-12), round_


def test_a_tally_with_nothing_new_writes_nothing() -> None:
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    tally = Tally()
    tally.observe(metrics.batch_size.labels("m"), 2)
    tally.flush()
    before = _samples(registry)
    tally.flush()
    assert _samples(registry) == before
