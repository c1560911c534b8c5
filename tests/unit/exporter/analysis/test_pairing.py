"""Shadow agreement: a shadow's predictions paired with the real answer's by request id."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.analysis.frames import CapturedExchange
from exporter.analysis.pairing import ShadowPairing
from exporter.analysis.protocols.base import Prediction
from exporter.metrics import make_metrics


def exchange(request_id: str, role: str = "primary", candidate: str = "") -> CapturedExchange:
    return CapturedExchange(
        0.0, request_id, "POST", "/v2/models/m/infer", b"", "v2", "m", None, [], b"",
        200, [], b"", 0.001, "", role, candidate,
    )  # fmt: skip


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"model": "m", "candidate": "c", **labels}) or 0.0


def test_classes_agree_or_not_and_numbers_differ_by_their_absolute_difference(
    registry: CollectorRegistry,
) -> None:
    pairing = ShadowPairing(make_metrics(registry))
    real = [Prediction(0.9, "1", 0.9), Prediction(0.2, "0", 0.8), Prediction(0.6, "1", 0.6)]
    copy = [Prediction(0.7, "1", 0.7), Prediction(0.6, "1", 0.6), Prediction(0.6, "1", 0.6)]
    pairing.offer("m", exchange("r1"), real)
    pairing.offer("m", exchange("r1", "shadow", "c"), copy)
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 2
    assert sample(registry, "mlmon_shadow_agreement_total", result="disagree") == 1
    assert sample(registry, "mlmon_shadow_prediction_abs_diff_count") == 3
    total = sample(registry, "mlmon_shadow_prediction_abs_diff_sum")
    assert total == pytest.approx(0.2 + 0.4 + 0.0)


def test_a_shadow_without_its_real_answer_is_not_compared(registry: CollectorRegistry) -> None:
    pairing = ShadowPairing(make_metrics(registry), max_entries=2)
    for request_id in ("a", "b", "c"):
        pairing.offer("m", exchange(request_id), [Prediction(label="1")])
    pairing.offer("m", exchange("a", "shadow", "c"), [Prediction(label="1")])  # evicted
    pairing.offer("m", exchange("zzz", "shadow", "c"), [Prediction(label="1")])  # never seen
    pairing.offer("m", exchange("c", "shadow", "c"), [Prediction(label="0")])
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0
    assert sample(registry, "mlmon_shadow_agreement_total", result="disagree") == 1


def test_entries_expire(registry: CollectorRegistry) -> None:
    pairing = ShadowPairing(make_metrics(registry), max_age_s=0.0)
    pairing.offer("m", exchange("a"), [Prediction(label="1")])
    pairing.offer("m", exchange("a", "shadow", "c"), [Prediction(label="1")])
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0


def test_missing_and_non_finite_predictions_count_nothing(registry: CollectorRegistry) -> None:
    pairing = ShadowPairing(make_metrics(registry))
    pairing.compare("m", "c", [Prediction(float("nan")), Prediction()], [Prediction(0.1)] * 2)
    pairing.compare("m", "c", [], [Prediction(0.1)])
    assert sample(registry, "mlmon_shadow_prediction_abs_diff_count") == 0
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0
