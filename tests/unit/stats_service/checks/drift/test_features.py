"""Per-feature drift of a window: scores, thresholds, adjusted p-values, edge cases."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon

from stats_service.baseline.contents import Baseline, NumericFeatureBaseline
from stats_service.checks.drift.calibration import Calibration, calibrate
from stats_service.checks.drift.features import evaluate_features
from stats_service.checks.drift.multiple import benjamini_hochberg
from stats_service.checks.drift.settings import DriftSettings
from stats_service.checks.results import FeatureDrift, MethodResult
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    WindowSummary,
    summarize_categorical,
    summarize_numeric,
)
from tests.unit.stats_service.checks.drift import (
    categorical_feature,
    make_baseline,
    numeric_feature,
)

RNG = np.random.default_rng(21)
PLANS = ["basic", "plus", "pro"]
AGE = numeric_feature("age", RNG.normal(40.0, 10.0, 50_000))
INCOME = numeric_feature("income", RNG.lognormal(10.0, 0.5, 50_000))
PLAN = categorical_feature("plan", RNG.choice(PLANS, 30_000, p=[0.5, 0.3, 0.2]).tolist())
BASELINE = make_baseline(AGE, INCOME, PLAN, prediction=numeric_feature("p", RNG.random(10_000)))
SETTINGS = DriftSettings()


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate(BASELINE, SETTINGS)


def window(
    columns: Mapping[str, ColumnSummary], prediction: ColumnSummary | None = None
) -> WindowSummary:
    rows = max((c.total for c in columns.values()), default=0)
    return WindowSummary("m", "5m", 0.0, 300.0, rows, columns, prediction=prediction)


def stationary(n: int, rng: np.random.Generator, *, age_shift: float = 0.0) -> WindowSummary:
    return window(
        {
            "age": summarize_numeric(rng.normal(40.0 + age_shift, 10.0, n), AGE),
            "income": summarize_numeric(rng.lognormal(10.0, 0.5, n), INCOME),
            "plan": summarize_categorical(rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]).tolist()),
        }
    )


def assert_no_nan(drift: FeatureDrift) -> None:
    for result in drift.methods:
        for value in (result.score, result.threshold, result.pvalue):
            assert value is None or math.isfinite(value), (drift.feature, result)
    assert all(math.isfinite(v) for v in (*drift.histogram.baseline, *drift.histogram.window))


def method(drift: FeatureDrift, name: str) -> MethodResult:
    result = drift.method(name)
    assert result is not None, name
    return result


def scores(drift: FeatureDrift) -> dict[str, float | None]:
    return {m.method: m.score for m in drift.methods}


def test_every_method_is_reported_with_thresholds_for_effect_sizes(
    calibration: Calibration,
) -> None:
    features, prediction = evaluate_features(
        BASELINE, stationary(2000, np.random.default_rng(1)), calibration, SETTINGS
    )
    assert prediction is None  # the window has no prediction column
    age, _, plan = features
    assert [m.method for m in age.methods] == [
        "psi",
        "jensenshannon",
        "hellinger",
        "wasserstein",
        "ks",
    ]
    assert [m.method for m in plan.methods] == ["psi", "jensenshannon", "hellinger", "chi2"]
    for drift in features:
        assert_no_nan(drift)
        assert drift.detection_method == "jensenshannon"
        assert not drift.detected
        assert drift.samples == 2000
        for result in drift.methods:
            if result.method in ("ks", "chi2"):
                assert result.threshold is None and result.pvalue is not None
            else:
                assert result.threshold is not None
                assert result.threshold >= SETTINGS.floors[result.method]
                assert result.pvalue is None


def test_a_half_std_shift_is_detected_and_scores_match_their_definitions(
    calibration: Calibration,
) -> None:
    rng = np.random.default_rng(2)
    summary = stationary(5000, rng, age_shift=5.0)
    (age, income, plan), _ = evaluate_features(BASELINE, summary, calibration, SETTINGS)
    assert age.detected and not income.detected and not plan.detected
    h = age.histogram
    assert (
        h.bins[0].startswith("[-inf, ")
        and h.bins[-2].endswith(", inf)")
        and h.bins[-1] == "missing"
    )
    assert sum(h.baseline) == pytest.approx(1.0) and sum(h.window) == pytest.approx(1.0)
    assert method(age, "jensenshannon").score == pytest.approx(
        scipy_jensenshannon(h.baseline, h.window, base=2), abs=1e-12
    )
    column = summary.columns["age"]
    assert isinstance(column, NumericSummary)
    expected_w = stats.wasserstein_distance(column.sample, AGE.sample) / AGE.std
    assert method(age, "wasserstein").score == pytest.approx(expected_w, abs=1e-9, rel=1e-9)
    assert scores(age)["wasserstein"] == pytest.approx(0.5, abs=0.05)


def test_pvalues_are_adjusted_across_features(calibration: Calibration) -> None:
    summary = stationary(300, np.random.default_rng(3), age_shift=1.0)
    features, _ = evaluate_features(BASELINE, summary, calibration, SETTINGS)
    raw = []
    for name in ("age", "income"):
        column = summary.columns[name]
        assert isinstance(column, NumericSummary)
        feature = BASELINE.feature(name)
        raw.append(stats.ks_2samp(column.sample, feature.sample).pvalue)
    adjusted = [method(f, "ks").pvalue for f in features[:2]]
    assert adjusted == pytest.approx(benjamini_hochberg(raw).tolist(), rel=1e-9, abs=1e-12)
    # chi2 is a family of its own (one categorical feature): its p-value is the raw one.
    plan = summary.columns["plan"]
    assert isinstance(plan, CategoricalSummary)
    table = [
        [round(p * PLAN.count) for p in PLAN.proportions],
        [plan.counts.get(c, 0) for c in PLAN.categories],
    ]
    expected = stats.chi2_contingency(table, correction=False)
    chi2 = features[2].method("chi2")
    assert chi2 is not None
    assert (chi2.score, chi2.pvalue) == pytest.approx(
        (expected.statistic, expected.pvalue), abs=1e-9, rel=1e-9
    )


def test_prediction_column_is_evaluated_under_its_own_name(calibration: Calibration) -> None:
    rng = np.random.default_rng(4)
    assert BASELINE.prediction is not None and isinstance(
        BASELINE.prediction, NumericFeatureBaseline
    )
    skewed = summarize_numeric(rng.random(1000) ** 3, BASELINE.prediction)
    summary = window(stationary(1000, rng).columns, prediction=skewed)
    features, prediction = evaluate_features(BASELINE, summary, calibration, SETTINGS)
    assert prediction is not None
    assert prediction.feature == "prediction" and prediction.detected
    assert len(features) == 3
    assert method(prediction, "ks").pvalue == pytest.approx(
        stats.ks_2samp(skewed.sample, BASELINE.prediction.sample).pvalue,
        rel=1e-9,
    )


def evaluate_one(
    baseline: Baseline, column: ColumnSummary, settings: DriftSettings = SETTINGS
) -> FeatureDrift:
    (drift,) = evaluate_features(
        baseline,
        window({baseline.features[0].name: column}),
        calibrate(baseline, settings),
        settings,
    )[0]
    assert_no_nan(drift)
    return drift


def test_empty_window_scores_nothing() -> None:
    baseline = make_baseline(AGE)
    drift = evaluate_one(baseline, summarize_numeric(np.array([]), AGE))
    assert all(m.score is None and m.threshold is None and m.pvalue is None for m in drift.methods)
    assert not drift.detected and drift.samples == 0
    assert drift.histogram.window == (0.0,) * len(drift.histogram.bins)
    plan = evaluate_one(make_baseline(PLAN), summarize_categorical([]))
    assert all(m.score is None for m in plan.methods) and not plan.detected


def test_all_missing_window_compares_the_missing_bins() -> None:
    drift = evaluate_one(make_baseline(AGE), summarize_numeric(np.full(500, np.nan), AGE))
    # The baseline has no missing values: the window's mass is all elsewhere.
    assert scores(drift)["jensenshannon"] == 1.0 and scores(drift)["hellinger"] == 1.0
    assert scores(drift)["wasserstein"] is None and scores(drift)["ks"] is None
    assert drift.detected and drift.samples == 0
    assert drift.histogram.window[-1] == 1.0


def test_constant_feature() -> None:
    constant = numeric_feature("c", np.full(1000, 3.0))
    baseline = make_baseline(constant)
    same = evaluate_one(baseline, summarize_numeric(np.full(200, 3.0), constant))
    assert all(s == 0.0 for s in scores(same).values())
    assert not same.detected
    assert method(same, "ks").pvalue == 1.0
    moved = evaluate_one(baseline, summarize_numeric(np.full(200, 3.6), constant))
    # std 0: Wasserstein in units of max(|mean|, 1) = 3
    assert scores(moved)["wasserstein"] == pytest.approx(0.2)
    assert moved.detected is False  # 3.6 is still in the bin [3, inf): the bins cannot see it
    below = evaluate_one(baseline, summarize_numeric(np.full(200, 2.0), constant))
    assert scores(below)["jensenshannon"] == 1.0 and below.detected


def test_baseline_without_sample_or_values() -> None:
    no_sample = NumericFeatureBaseline(**{**AGE.__dict__, "sample": ()})
    drift = evaluate_one(make_baseline(no_sample), summarize_numeric(RNG.normal(40, 10, 300), AGE))
    assert scores(drift)["ks"] is None and scores(drift)["wasserstein"] is None
    assert scores(drift)["jensenshannon"] is not None
    empty = numeric_feature("e", np.full(100, np.nan))  # count 0, every row missing
    drift = evaluate_one(make_baseline(empty), summarize_numeric(np.full(50, np.nan), empty))
    assert scores(drift)["jensenshannon"] == 0.0 and not drift.detected
    drift = evaluate_one(make_baseline(empty), summarize_numeric(np.ones(50), empty))
    assert scores(drift)["jensenshannon"] == 1.0 and scores(drift)["ks"] is None
    nothing = numeric_feature("z", np.array([]))  # no rows at all: nothing to compare with
    drift = evaluate_one(make_baseline(nothing), summarize_numeric(np.ones(50), nothing))
    assert all(m.score is None for m in drift.methods) and not drift.detected


def test_single_category() -> None:
    only = categorical_feature("k", ["a"] * 100)
    drift = evaluate_one(make_baseline(only), summarize_categorical(["a"] * 40))
    assert scores(drift) == {"psi": 0.0, "jensenshannon": 0.0, "hellinger": 0.0, "chi2": 0.0}
    assert method(drift, "chi2").pvalue == 1.0
    assert not drift.detected


def test_unseen_values_go_to_unseen_or_to_other() -> None:
    unseen_only = evaluate_one(make_baseline(PLAN), summarize_categorical(["gold"] * 100))
    assert scores(unseen_only)["jensenshannon"] == pytest.approx(1.0) and unseen_only.detected
    bins = unseen_only.histogram.bins
    assert bins[-3:] == ("__other__", "__unseen__", "missing")
    assert unseen_only.histogram.window[bins.index("__unseen__")] == 1.0
    chi2 = method(unseen_only, "chi2")
    assert chi2 is not None and chi2.pvalue is not None and chi2.pvalue < 1e-10
    # A baseline that folded rare categories into __other__: an unknown value may be one.
    folded = categorical_feature(
        "f", ["a"] * 60 + ["b"] * 30 + ["c"] * 6 + ["d"] * 4, max_categories=2
    )
    assert folded.other_proportion == pytest.approx(0.1)
    summary = CategoricalSummary(counts={"a": 30, "b": 15, "d": 3}, missing=0, other=2)
    drift = evaluate_one(make_baseline(folded), summary)
    h = drift.histogram
    assert h.window[h.bins.index("__other__")] == pytest.approx(0.1)
    assert h.window[h.bins.index("__unseen__")] == 0.0
    assert scores(drift)["jensenshannon"] == pytest.approx(0.0, abs=1e-12)
    # A store's undivided remainder goes where unknown values go.
    remainder = CategoricalSummary(counts={"basic": 50}, missing=10, other=40)
    drift = evaluate_one(make_baseline(PLAN), remainder)
    h = drift.histogram
    assert h.window[h.bins.index("__unseen__")] == pytest.approx(0.4)
    assert h.window[h.bins.index("missing")] == pytest.approx(0.1)


def test_missing_values_shift_the_binned_scores_only() -> None:
    values = RNG.normal(40.0, 10.0, 2000)
    values[:400] = np.nan  # 20% missing, the baseline has none
    drift = evaluate_one(make_baseline(AGE), summarize_numeric(values, AGE))
    assert drift.detected
    assert drift.samples == 1600
    assert drift.histogram.window[-1] == pytest.approx(0.2)
    assert (method(drift, "ks").pvalue or 0.0) > 0.001  # the present values did not move


def test_feature_override_decides_detection() -> None:
    settings = DriftSettings(feature_methods={"age": "wasserstein"}, feature_floors={"age": 0.6})
    summary = summarize_numeric(RNG.normal(45.0, 10.0, 5000), AGE)  # +0.5 std
    drift = evaluate_one(make_baseline(AGE), summary, settings)
    assert drift.detection_method == "wasserstein"
    assert not drift.detected  # 0.5 < its own floor of 0.6
    assert method(drift, "jensenshannon").threshold == settings.floors["jensenshannon"]


def test_mismatched_summary_is_refused(calibration: Calibration) -> None:
    with pytest.raises(ValueError, match="no column 'plan'"):
        evaluate_features(
            BASELINE,
            window(
                {
                    "age": NumericSummary((1,) * len(AGE.proportions), 0, 0, 0),
                    "income": NumericSummary((1,) * len(INCOME.proportions), 0, 0, 0),
                }
            ),
            calibration,
            SETTINGS,
        )
    with pytest.raises(ValueError, match="bins"):
        evaluate_one(make_baseline(AGE), NumericSummary((1, 2), 0, 0, 0))
    with pytest.raises(ValueError, match="categorical"):
        evaluate_one(make_baseline(PLAN), NumericSummary((1,), 0, 0, 0))
