"""Shadow agreement: a shadow's predictions paired with the real answer's by request id."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.analysis.frames import CapturedExchange
from exporter.analysis.pairing import MAX_AGE_S, MAX_ENTRIES, PrimaryRequests, ShadowPairing
from exporter.analysis.protocols.base import Prediction
from exporter.metrics import make_metrics
from exporter.tally import Tally


def exchange(request_id: str, role: str = "primary", candidate: str = "") -> CapturedExchange:
    return CapturedExchange(
        0.0, request_id, "POST", "/v2/models/m/infer", b"", "v2", "m", None, [], b"",
        200, [], b"", 0.001, "", role, candidate,
    )  # fmt: skip


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


class Paired:
    """A pairing and the tally it writes through, flushed as the analysis does per batch."""

    def __init__(
        self,
        registry: CollectorRegistry,
        max_entries: int = MAX_ENTRIES,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.tally = Tally()
        self.pairing = ShadowPairing(make_metrics(registry), self.tally, max_entries, max_age_s)

    def offer(self, request_id: str, predictions: list[Prediction], *route: str) -> None:
        self.pairing.offer("m", exchange(request_id, *route), predictions)
        self.tally.flush()

    def compare(self, answered: list[Prediction], shadow: list[Prediction]) -> None:
        self.pairing.compare("m", "c", answered, shadow)
        self.tally.flush()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"model": "m", "candidate": "c", **labels}) or 0.0


def test_classes_agree_or_not_and_numbers_differ_by_their_absolute_difference(
    registry: CollectorRegistry,
) -> None:
    pairing = Paired(registry)
    real = [Prediction(0.9, "1", 0.9), Prediction(0.2, "0", 0.8), Prediction(0.6, "1", 0.6)]
    copy = [Prediction(0.7, "1", 0.7), Prediction(0.6, "1", 0.6), Prediction(0.6, "1", 0.6)]
    pairing.offer("r1", real)
    pairing.offer("r1", copy, "shadow", "c")
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 2
    assert sample(registry, "mlmon_shadow_agreement_total", result="disagree") == 1
    assert sample(registry, "mlmon_shadow_prediction_abs_diff_count") == 3
    total = sample(registry, "mlmon_shadow_prediction_abs_diff_sum")
    assert total == pytest.approx(0.2 + 0.4 + 0.0)


def test_a_shadow_without_its_real_answer_is_not_compared(registry: CollectorRegistry) -> None:
    pairing = Paired(registry, max_entries=2)
    for request_id in ("a", "b", "c"):
        pairing.offer(request_id, [Prediction(label="1")])
    pairing.offer("a", [Prediction(label="1")], "shadow", "c")  # evicted
    pairing.offer("zzz", [Prediction(label="1")], "shadow", "c")  # never seen
    pairing.offer("c", [Prediction(label="0")], "shadow", "c")
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0
    assert sample(registry, "mlmon_shadow_agreement_total", result="disagree") == 1


def test_entries_expire(registry: CollectorRegistry) -> None:
    pairing = Paired(registry, max_age_s=0.0)
    pairing.offer("a", [Prediction(label="1")])
    pairing.offer("a", [Prediction(label="1")], "shadow", "c")
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0


def test_missing_and_non_finite_predictions_count_nothing(registry: CollectorRegistry) -> None:
    pairing = Paired(registry)
    pairing.compare([Prediction(float("nan")), Prediction()], [Prediction(0.1)] * 2)
    pairing.compare([], [Prediction(0.1)])
    assert sample(registry, "mlmon_shadow_prediction_abs_diff_count") == 0
    assert sample(registry, "mlmon_shadow_agreement_total", result="agree") == 0


def test_primaries_requests_are_held_within_a_row_bound_and_an_age() -> None:
    held = PrimaryRequests[str](max_rows=5)
    held.remember("a", 3, "rows of a")
    held.remember("b", 2, "rows of b")
    assert (held.find("a"), held.find("b")) == ("rows of a", "rows of b")
    held.remember("c", 1, "rows of c")  # 6 rows: the oldest request goes
    assert (held.find("a"), held.find("b"), held.find("c")) == (None, "rows of b", "rows of c")
    held.remember("b", 2, "rows of b again")  # a reused request id replaces its entry
    held.remember("d", 3, "rows of d")  # c is the oldest now
    assert (held.find("b"), held.find("c"), held.find("d")) == (
        "rows of b again",
        None,
        "rows of d",
    )
    aged = PrimaryRequests[str](max_age_s=0.0)
    aged.remember("a", 1, "rows of a")
    assert aged.find("a") is None
