"""KS and Wasserstein over samples: scipy's figures, finite values only, None when empty."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stats_service.checks.drift.samples import (
    EXACT_KS_PAIRS,
    ks_method,
    ks_test,
    wasserstein,
    wasserstein_scale,
)

ABS = REL = 1e-9


@pytest.mark.parametrize(("n", "m"), [(30, 50), (800, 5000), (20_000, 5000)])
def test_ks_matches_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    window, reference = rng.normal(0.1, 1.0, n), rng.normal(0.0, 1.0, m)
    result = ks_test(window, reference)
    expected = stats.ks_2samp(window, reference, method=ks_method(n, m))
    assert result is not None
    assert result.statistic == pytest.approx(expected.statistic, abs=ABS, rel=REL)
    assert result.pvalue == pytest.approx(expected.pvalue, abs=ABS, rel=REL)


def test_ks_uses_scipys_default_below_the_exact_cost_limit() -> None:
    rng = np.random.default_rng(1)
    window, reference = rng.normal(size=400), rng.normal(size=600)
    result = ks_test(window, reference)
    expected = stats.ks_2samp(window, reference)
    assert result is not None
    assert (result.statistic, result.pvalue) == pytest.approx(
        (expected.statistic, expected.pvalue), abs=ABS, rel=REL
    )
    assert ks_method(10_000, 1000) == "auto"
    assert ks_method(10_000, EXACT_KS_PAIRS // 10_000 + 1) == "asymp"


def test_ks_ignores_missing_and_infinite_values() -> None:
    rng = np.random.default_rng(2)
    window, reference = rng.normal(size=200), rng.normal(size=300)
    dirty = np.concatenate((window, [np.nan, np.inf, -np.inf]))
    assert ks_test(dirty, reference) == ks_test(window, reference)


def test_ks_is_undefined_without_values_on_a_side() -> None:
    assert ks_test([], [1.0, 2.0]) is None
    assert ks_test([np.nan, np.nan], [1.0, 2.0]) is None
    assert ks_test([1.0], ()) is None


def test_wasserstein_matches_scipy_divided_by_the_scale() -> None:
    rng = np.random.default_rng(4)
    window, reference = rng.lognormal(size=700), rng.lognormal(size=5000)
    scale = float(reference.std())
    expected = stats.wasserstein_distance(window, reference) / scale
    assert wasserstein(window, reference, scale) == pytest.approx(expected, abs=ABS, rel=REL)


def test_wasserstein_of_a_shift_is_the_shift_in_stds() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(50.0, 10.0, 50_000)
    window = rng.normal(55.0, 10.0, 50_000)
    assert wasserstein(window, reference, 10.0) == pytest.approx(0.5, abs=0.02)


def test_wasserstein_is_undefined_without_values_and_rejects_a_bad_scale() -> None:
    assert wasserstein([], [1.0], 1.0) is None
    assert wasserstein([1.0], [np.nan], 1.0) is None
    with pytest.raises(ValueError, match="scale"):
        wasserstein([1.0], [2.0], 0.0)


def test_wasserstein_scale() -> None:
    assert wasserstein_scale(2.5, 100.0) == 2.5
    # A constant reference: relative change for large values, absolute near zero.
    assert wasserstein_scale(0.0, 1000.0) == 1000.0
    assert wasserstein_scale(0.0, -0.2) == 1.0
    assert wasserstein_scale(None, None) == 1.0
    assert wasserstein_scale(float("nan"), float("inf")) == 1.0


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_ks_and_wasserstein_on_tied_values_match_scipy(shift: float) -> None:
    """Rounded values repeat within and across the samples: where they tie, both statistics
    must read the CDFs after every tied value, as scipy's binary searches do."""
    rng = np.random.default_rng(6)
    window = np.round(rng.normal(shift, 1.0, 100_000), 1)
    reference = np.round(rng.normal(0.0, 1.0, 5000), 1)
    result = ks_test(window, reference)
    expected = stats.ks_2samp(window, reference, method=ks_method(len(window), len(reference)))
    assert result is not None
    assert result.statistic == pytest.approx(expected.statistic, abs=ABS, rel=REL)
    assert result.pvalue == pytest.approx(expected.pvalue, abs=ABS, rel=REL)
    distance = stats.wasserstein_distance(window, reference)
    assert wasserstein(window, reference, 1.0) == pytest.approx(distance, abs=ABS, rel=REL)


def test_ks_of_a_window_entirely_below_the_reference_is_one() -> None:
    result = ks_test(np.zeros(20_000), np.ones(5000))
    expected = stats.ks_2samp(np.zeros(20_000), np.ones(5000), method="asymp")
    assert result is not None
    assert (result.statistic, result.pvalue) == pytest.approx(
        (1.0, expected.pvalue), abs=ABS, rel=REL
    )
