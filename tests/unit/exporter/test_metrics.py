from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.metrics import OTHER, LabelCap, make_metrics


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
