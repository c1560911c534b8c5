"""Calibrated thresholds: false alarms at the configured rate, floors, sizes, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from stats_service.baseline.contents import CategoricalFeatureBaseline, NumericFeatureBaseline
from stats_service.checks.drift.binned import jensenshannon, shares
from stats_service.checks.drift.calibration import Calibration, calibrate, reference_bins
from stats_service.checks.drift.samples import wasserstein
from stats_service.checks.drift.settings import DriftSettings
from tests.unit.stats_service.checks.drift import (
    categorical_feature,
    make_baseline,
    numeric_feature,
)

RNG = np.random.default_rng(11)
TRAIN = RNG.normal(0.0, 1.0, 100_000)
TRAIN[RNG.random(len(TRAIN)) < 0.05] = np.nan
PLANS = np.array(["basic", "plus", "pro", "team", "student"])
PLAN_SHARES = [0.4, 0.25, 0.15, 0.12, 0.08]
BASELINE = make_baseline(
    numeric_feature("x", TRAIN),
    categorical_feature("plan", RNG.choice(PLANS, 50_000, p=PLAN_SHARES).tolist()),
    prediction=numeric_feature("score", RNG.random(20_000)),
)
SETTINGS = DriftSettings(seed=3)


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate(BASELINE, SETTINGS)


def binned_window_shares(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Rows of `values` (NaN = missing) as shares on the baseline's bins + missing bin,
    counted as summarize_numeric counts them."""
    edge_array = np.asarray(edges)
    which = np.clip(np.searchsorted(edge_array, values, side="right") - 1, 0, len(edges) - 2)
    which = np.where(np.isnan(values), len(edges) - 1, which)
    rows = which + (np.arange(len(values)) * len(edges))[:, None]
    counts = np.bincount(rows.ravel(), minlength=len(values) * len(edges))
    return shares(counts.reshape(len(values), len(edges)))


@pytest.mark.parametrize("n", [100, 300])  # a grid size, and one interpolated
def test_stationary_windows_alarm_at_most_at_the_configured_rate(
    calibration: Calibration, n: int
) -> None:
    feature = BASELINE.feature("x")
    assert isinstance(feature, NumericFeatureBaseline)
    rng = np.random.default_rng(100 + n)
    windows = rng.normal(0.0, 1.0, (4000, n))
    windows[rng.random(windows.shape) < 0.05] = np.nan
    window_shares = binned_window_shares(windows, feature.edges)
    scores = jensenshannon(reference_bins(feature).shares, window_shares)
    alarms = float(np.mean(scores > calibration.threshold("x", "jensenshannon", n)))
    # 1% of 4,000 is 40 +- 6; the threshold is deliberately on the safe side of the
    # quantile, but not so far that it stops alarming altogether.
    assert 0.001 < alarms <= 0.016


def test_categorical_stationary_windows_alarm_at_most_at_the_rate(
    calibration: Calibration,
) -> None:
    feature = BASELINE.feature("plan")
    assert isinstance(feature, CategoricalFeatureBaseline)
    rng = np.random.default_rng(7)
    n = 200
    counts = rng.multinomial(n, PLAN_SHARES, 4000)
    window = shares(np.column_stack((counts, np.zeros((4000, 3)))))  # other, unseen, missing
    order = [feature.categories.index(p) for p in PLANS]
    reference = reference_bins(feature).shares
    aligned = np.concatenate((reference[order], reference[5:]))
    scores = jensenshannon(aligned, window)
    alarms = float(np.mean(scores > calibration.threshold("plan", "jensenshannon", n)))
    assert 0.001 < alarms <= 0.016


def test_wasserstein_stationary_windows_alarm_near_the_rate() -> None:
    """The Wasserstein null is a bootstrap of one 2,000-value sample, so how often a given
    baseline alarms scatters around the rate more than the binned methods do (0.5-1.7%
    measured over baselines); the bound is looser accordingly."""
    rng = np.random.default_rng(8)
    feature = numeric_feature("w", rng.lognormal(0.0, 1.0, 20_000), sample_size=2000)
    settings = DriftSettings(floors={"wasserstein": 0.0}, seed=1)
    calibration = calibrate(make_baseline(feature), settings)
    threshold = calibration.threshold("w", "wasserstein", 100)
    assert threshold > 0.0
    sample = np.array(feature.sample)
    assert feature.std is not None
    scores = [wasserstein(rng.lognormal(0.0, 1.0, 100), sample, feature.std) for _ in range(3000)]
    alarms = float(np.mean(np.array(scores) > threshold))
    assert 0.001 < alarms <= 0.025


def test_wasserstein_null_agrees_with_a_brute_force_simulation() -> None:
    """The calibrated quantile (blocks) against scipy on every resample, heavy tails."""
    rng = np.random.default_rng(9)
    feature = numeric_feature("w", rng.lognormal(0.0, 1.5, 2000), sample_size=2000)
    settings = DriftSettings(floors={"wasserstein": 0.0}, resamples=2000, seed=2)
    threshold = calibrate(make_baseline(feature), settings).threshold("w", "wasserstein", 200)
    sample = np.array(feature.sample)
    exact = [
        stats.wasserstein_distance(rng.choice(sample, 200), rng.choice(sample, len(sample)))
        for _ in range(2000)
    ]
    assert feature.std is not None
    brute = float(np.quantile(np.array(exact) / feature.std, 0.995))
    assert threshold == pytest.approx(brute, rel=0.15)


def test_thresholds_never_below_the_floor_and_not_increasing_with_n(
    calibration: Calibration,
) -> None:
    sizes = [0, 1, 10, 50, 75, 100, 150, 1000, 3000, 10_000, 10**6, 10**8]
    for feature, method in calibration.curves:
        floor = calibration.curves[feature, method].floor
        thresholds = [calibration.threshold(feature, method, n) for n in sizes]
        assert all(t >= floor for t in thresholds), (feature, method)
        assert all(a >= b for a, b in itertools.pairwise(thresholds))
        assert thresholds[0] > thresholds[-1] == floor  # the quantile decides small windows
    assert calibration.threshold("x", "jensenshannon", 10**6) == SETTINGS.floors["jensenshannon"]


def test_every_effect_size_method_is_calibrated_for_features_and_prediction(
    calibration: Calibration,
) -> None:
    for method in ("psi", "jensenshannon", "hellinger", "wasserstein"):
        assert calibration.threshold("x", method, 500) > 0
        assert calibration.threshold("prediction", method, 500) > 0
    for method in ("psi", "jensenshannon", "hellinger"):
        assert calibration.threshold("plan", method, 500) > 0
    with pytest.raises(KeyError, match="wasserstein"):
        calibration.threshold("plan", "wasserstein", 500)
    with pytest.raises(KeyError, match="nope"):
        calibration.threshold("nope", "psi", 500)


def test_deterministic_for_a_seed(calibration: Calibration) -> None:
    assert calibrate(BASELINE, SETTINGS) == calibration
    other = calibrate(BASELINE, DriftSettings(seed=4))
    assert other.threshold("x", "jensenshannon", 100) != calibration.threshold(
        "x", "jensenshannon", 100
    )


def test_a_feature_s_thresholds_do_not_depend_on_the_other_features(
    calibration: Calibration,
) -> None:
    alone = calibrate(make_baseline(BASELINE.feature("x")), SETTINGS)
    for n in (50, 200, 700):
        assert alone.threshold("x", "hellinger", n) == calibration.threshold("x", "hellinger", n)


def test_small_training_sets_get_wider_thresholds() -> None:
    rng = np.random.default_rng(12)
    settings = DriftSettings(floors={"jensenshannon": 0.0}, seed=5)
    small = calibrate(make_baseline(numeric_feature("x", rng.normal(size=500))), settings)
    large = calibrate(make_baseline(numeric_feature("x", rng.normal(size=100_000))), settings)
    for n in (1000, 10_000):
        assert small.threshold("x", "jensenshannon", n) > 1.5 * large.threshold(
            "x", "jensenshannon", n
        )


def test_wasserstein_sizes_are_capped_at_the_sample_size() -> None:
    rng = np.random.default_rng(13)
    feature = numeric_feature("x", rng.normal(size=3000), sample_size=300)
    calibration = calibrate(make_baseline(feature), DriftSettings(floors={"wasserstein": 0.0}))
    curve = calibration.curves["x", "wasserstein"]
    assert max(curve.sizes) == 300
    at_cap = calibration.threshold("x", "wasserstein", 300)
    assert calibration.threshold("x", "wasserstein", 100_000) == at_cap > 0


def test_feature_overrides() -> None:
    settings = DriftSettings(
        feature_methods={"x": "wasserstein"}, feature_floors={"x": 0.9, "plan": 0.5}
    )
    calibration = calibrate(BASELINE, settings)
    assert calibration.threshold("x", "wasserstein", 10**6) == 0.9
    assert calibration.threshold("x", "jensenshannon", 10**6) == settings.floors["jensenshannon"]
    assert calibration.threshold("plan", "jensenshannon", 10**6) == 0.5
    with pytest.raises(ValueError, match=r"feature_methods\.plan.*categorical"):
        calibrate(BASELINE, DriftSettings(feature_methods={"plan": "wasserstein"}))


def test_references_with_nothing_to_resample_get_the_floor() -> None:
    empty = numeric_feature("empty", np.full(100, np.nan))  # count 0: all missing
    nothing = numeric_feature("nothing", np.array([]))  # no rows at all
    constant = numeric_feature("constant", np.full(1000, 7.0))
    words = categorical_feature("words", [None] * 10)
    baseline = make_baseline(empty, nothing, constant, words)
    calibration = calibrate(baseline, SETTINGS)
    for name in ("empty", "nothing", "constant"):
        for method in ("psi", "jensenshannon", "hellinger", "wasserstein"):
            threshold = calibration.threshold(name, method, 100)
            assert threshold == SETTINGS.floors[method], (name, method)
    assert calibration.threshold("words", "jensenshannon", 100) == SETTINGS.floors["jensenshannon"]


def test_a_feature_named_like_the_prediction_column_is_refused() -> None:
    baseline = make_baseline(
        numeric_feature("prediction", np.arange(10.0)), prediction=numeric_feature("p", [1.0])
    )
    with pytest.raises(ValueError, match="prediction"):
        calibrate(baseline, SETTINGS)


def test_settings_defaults_and_partial_floors() -> None:
    settings = DriftSettings(floors={"psi": 0.05})
    assert settings.floors == {
        "jensenshannon": 0.07,
        "hellinger": 0.06,
        "psi": 0.05,
        "wasserstein": 0.2,
    }
    assert settings.detection_method("x", "numeric") == "jensenshannon"
    assert settings.detection_method("plan", "categorical") == "jensenshannon"
    assert settings.false_alarm_rate == 0.01


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"false_alarm_rate": 0.0}, r"false_alarm_rate: expected a rate in \(0, 0.5\)"),
        ({"false_alarm_rate": "0.01"}, "false_alarm_rate"),
        ({"numeric_method": "ks"}, "numeric_method: expected one of psi, jensenshannon"),
        ({"categorical_method": "wasserstein"}, "categorical_method: expected one of psi"),
        ({"floors": {"kl": 0.1}}, "floors: expected keys among"),
        ({"floors": {"psi": -1.0}}, r"floors\.psi: expected a finite number >= 0"),
        ({"feature_methods": {"age": "chi2"}}, r"feature_methods\.age: expected one of"),
        ({"feature_floors": {"age": float("nan")}}, r"feature_floors\.age"),
        ({"window_sizes": (100, 50)}, "window_sizes: expected increasing integers"),
        ({"window_sizes": ()}, "window_sizes"),
        ({"resamples": 50}, r"resamples: expected an integer >= 100"),
        ({"false_alarm_rate": 0.001, "resamples": 500}, r"resamples: expected an integer >= 1000"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
    ],
)
def test_invalid_settings_name_the_field(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftSettings(**arguments)  # type: ignore[arg-type]
