"""Candidate against primary: agreement, abs differences, distances (checked against scipy
on the same inputs and by hand) and each side's performance on the same labelled rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from exporter.schema import PredictionSpec
from stats_service.baseline.contents import CategoricalFeatureBaseline, NumericFeatureBaseline
from stats_service.checks.comparison import (
    CandidateComparison,
    compare_candidate,
    label_agreement,
    label_distance,
    value_distance,
)
from stats_service.windows.candidates import CandidateRole, CandidateWindow, Predictions

BINARY = PredictionSpec(task="binary", classes=("0", "1"))


def side(
    labels: list[Any] | None = None,
    values: list[float] | None = None,
    scores: list[float] | None = None,
    truth: list[Any] | None = None,
) -> Predictions:
    n = len(labels if labels is not None else values or [])
    return Predictions(
        value=np.array(values if values is not None else [math.nan] * n, dtype=np.float64),
        score=np.array(scores if scores is not None else [math.nan] * n, dtype=np.float64),
        label=tuple(labels if labels is not None else [None] * n),
        truth=tuple(truth if truth is not None else [None] * n),
    )


def window(primary: Predictions, answers: Predictions, role: CandidateRole) -> CandidateWindow:
    return CandidateWindow("m", "5m", "m2", role, 0.0, 300.0, answers.count, primary, answers)


def methods(comparison: CandidateComparison) -> dict[str, tuple[float | None, float | None]]:
    return {m.method: (m.score, m.pvalue) for m in comparison.distance}


def test_shadow_agreement_differences_and_performance_on_the_same_rows() -> None:
    # 10 pairs: the candidate disagrees on rows 2 and 7; ground truth on rows 0-5.
    primary_labels = ["1", "0", "1", "1", "0", "0", "1", "0", "1", "0"]
    shadow_labels = ["1", "0", "0", "1", "0", "0", "1", "1", "1", "0"]
    truth = ["1", "0", "0", "1", "1", "0", None, None, None, None]
    primary_scores = [0.9, 0.8, 0.6, 0.7, 0.9, 0.8, 0.7, 0.6, 0.9, 0.8]
    shadow_scores = [0.8, 0.8, 0.7, 0.9, 0.9, 0.6, 0.7, 0.7, 0.9, 0.8]
    result = compare_candidate(
        window(
            side(primary_labels, scores=primary_scores, truth=truth),
            side(shadow_labels, scores=shadow_scores, truth=truth),
            "shadow",
        ),
        CategoricalFeatureBaseline("prediction", 10, 0, ("0", "1"), (0.5, 0.5), 0.0, 0.0, ()),
        BINARY,
        min_samples=5,
    )
    assert result.status == "ok"
    assert result.agreement == pytest.approx(0.8)
    assert result.agreement_samples == 10
    expected = np.mean(np.abs(np.array(shadow_scores) - np.array(primary_scores)))
    assert result.mean_abs_diff == {"score": pytest.approx(expected)}
    assert result.primary_performance is not None and result.candidate_performance is not None
    # Both sides on rows 0-5: the primary misses rows 2 and 4, the shadow row 4 only.
    assert result.primary_performance.samples == result.candidate_performance.samples == 6
    assert result.primary_performance.metrics["accuracy"] == pytest.approx(4 / 6)
    assert result.candidate_performance.metrics["accuracy"] == pytest.approx(5 / 6)
    # 5 ones and 5 zeros on both sides: the same distribution despite the disagreements.
    assert methods(result)["jensenshannon"][0] == pytest.approx(0.0)
    assert methods(result)["chi2"] == (0.0, 1.0)  # the same counts on both sides


def test_labels_are_compared_in_one_spelling() -> None:
    assert label_agreement(["true", "1", "1.0", "no"], ["1", "True", "1", "no"]) == (1.0, 4)
    assert label_agreement(["1", None, "0"], [None, "1", "1"]) == (0.0, 1)
    assert label_agreement([None], ["1"]) == (None, 0)


def test_label_distance_matches_scipy() -> None:
    primary = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    candidate = ["a"] * 30 + ["b"] * 30 + ["c"] * 30 + ["d"] * 10
    found = {m.method: m for m in label_distance(primary, candidate)}
    p = np.array([50, 30, 20, 0]) / 100
    q = np.array([30, 30, 30, 10]) / 100
    assert found["jensenshannon"].score == pytest.approx(jensenshannon(p, q, base=2))
    assert found["hellinger"].score == pytest.approx(math.sqrt(1 - float(np.sum(np.sqrt(p * q)))))
    psi = sum((w - r) * math.log(w / r) for r, w in zip(np.maximum(p, 1e-4), q, strict=True))
    assert found["psi"].score == pytest.approx(psi)
    chi2 = stats.chi2_contingency(np.array([[50, 30, 20, 0], [30, 30, 30, 10]]), correction=False)
    assert found["chi2"].score == pytest.approx(chi2.statistic)
    assert found["chi2"].pvalue == pytest.approx(chi2.pvalue)


def test_value_distance_matches_scipy_on_the_baseline_bins() -> None:
    rng = np.random.default_rng(3)
    primary = rng.normal(0.0, 1.0, 2_000)
    candidate = rng.normal(0.5, 1.0, 1_500)
    reference = NumericFeatureBaseline(
        "prediction", 1000, 0, (-math.inf, -1.0, 0.0, 1.0, math.inf),
        (0.16, 0.34, 0.34, 0.16), -4.0, 4.0, 0.0, 2.0, (),
    )  # fmt: skip
    found = {m.method: m for m in value_distance(primary, candidate, reference)}
    ks = stats.ks_2samp(candidate, primary)
    assert found["ks"].score == pytest.approx(ks.statistic)
    assert found["ks"].pvalue == pytest.approx(ks.pvalue)
    assert found["wasserstein"].score == pytest.approx(
        stats.wasserstein_distance(candidate, primary) / 2.0  # the baseline's std
    )
    edges = [-1.0, 0.0, 1.0]
    p = np.bincount(np.searchsorted(edges, primary, side="right"), minlength=4) / len(primary)
    q = np.bincount(np.searchsorted(edges, candidate, side="right"), minlength=4) / len(candidate)
    assert found["jensenshannon"].score == pytest.approx(jensenshannon(p, q, base=2))


def test_value_distance_without_a_baseline_bins_on_the_primarys_deciles() -> None:
    primary = np.arange(1000, dtype=np.float64)
    found = {m.method: m.score for m in value_distance(primary, primary.copy(), None)}
    assert found["jensenshannon"] == pytest.approx(0.0)
    assert found["ks"] == pytest.approx(0.0)
    assert found["wasserstein"] == pytest.approx(0.0)
    shifted = {m.method: m.score for m in value_distance(primary, primary + 2000, None)}
    # Ten bins of 10% of the primary each; every shifted value in the last one.
    expected = jensenshannon([0.1] * 10, [0.0] * 9 + [1.0], base=2)
    assert shifted["jensenshannon"] == pytest.approx(expected)
    assert shifted["wasserstein"] == pytest.approx(2000 / np.std(primary))


def test_a_regression_shadow_has_differences_no_agreement() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    result = compare_candidate(
        window(
            side(values=values, truth=[1.5, None, 3.0, None]),
            side(values=[1.5, 2.0, 2.0, math.nan], truth=[1.5, None, 3.0, None]),
            "shadow",
        ),
        None,
        PredictionSpec(task="regression"),
        min_samples=1,
    )
    assert result.agreement is None and result.agreement_samples == 0
    assert result.mean_abs_diff == {"value": pytest.approx(0.5)}  # the NaN pair left out
    assert result.primary_performance is not None and result.candidate_performance is not None
    assert result.primary_performance.metrics["mae"] == pytest.approx(0.25)
    assert result.candidate_performance.metrics["mae"] == pytest.approx(0.5)


def test_a_canary_is_not_paired() -> None:
    result = compare_candidate(
        window(side(["1", "0", "1"], truth=["1", "1", None]), side(["1", "1"]), "canary"),
        None,
        BINARY,
        min_samples=2,
    )
    assert result.status == "ok"
    assert (result.agreement, result.mean_abs_diff) == (None, {})
    assert (result.primary_samples, result.candidate_samples) == (3, 2)
    assert result.primary_performance is not None
    assert result.primary_performance.metrics["accuracy"] == pytest.approx(0.5)
    assert result.candidate_performance is None  # none of its rows labelled yet
    assert set(methods(result)) == {"psi", "jensenshannon", "hellinger", "chi2"}


@pytest.mark.parametrize(
    ("primary", "answers"),
    [
        (side([]), side([])),  # an empty window
        (side(["1"] * 3), side(["1"])),  # one answer, min_samples 2
    ],
)
def test_too_few_answers_is_insufficient(primary: Predictions, answers: Predictions) -> None:
    result = compare_candidate(window(primary, answers, "shadow"), None, BINARY, 2)
    assert result.status == "insufficient"
    assert "min_samples=2" in result.message
    assert (result.agreement, result.distance, result.candidate_performance) == (None, (), None)


def test_no_usable_prediction_gives_no_distance_never_nan() -> None:
    nothing = side(values=[math.nan, math.inf, math.nan])
    result = compare_candidate(window(nothing, nothing, "shadow"), None, None, 1)
    assert result.status == "ok"
    assert result.distance == ()
    assert result.mean_abs_diff == {}
    assert result.agreement is None
    assert result.primary_performance is None


def test_constant_predictions_on_both_sides_score_zero() -> None:
    constant = side(["yes"] * 20)
    found = methods(compare_candidate(window(constant, constant, "shadow"), None, None, 1))
    assert found["jensenshannon"][0] == pytest.approx(0.0)
    assert found["psi"][0] == pytest.approx(0.0)
    assert found["chi2"] == (0.0, 1.0)
    values = side(values=[0.3] * 20)
    found = methods(compare_candidate(window(values, values, "shadow"), None, None, 1))
    assert all(score == pytest.approx(0.0) for score, _ in found.values())
