"""Chi-square over the union of categories."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stats_service.checks.drift.contingency import chi2_test

ABS = REL = 1e-9


def test_hand_worked() -> None:
    # Rows of 100, column totals 80 and 120: expected 40 and 60 on each row.
    # (50-40)^2/40 + (50-60)^2/60 + (30-40)^2/40 + (70-60)^2/60 = 2.5+1.667+2.5+1.667 = 8.333
    result = chi2_test({"a": 50, "b": 50}, {"a": 30, "b": 70})
    assert result is not None
    assert result.statistic == pytest.approx(25 / 3, rel=1e-12)
    assert result.pvalue == pytest.approx(stats.chi2.sf(25 / 3, 1), rel=1e-12)


def test_matches_scipy_over_the_union_of_categories() -> None:
    reference = {"a": 500.0, "b": 300.0, "c": 200.0}
    window = {"b": 40.0, "a": 45.0, "d": 15.0}  # c unseen in the window, d new
    table = np.array([[500, 300, 200, 0], [45, 40, 0, 15]], dtype=float)
    expected = stats.chi2_contingency(table, correction=False)
    result = chi2_test(reference, window)
    assert result is not None
    assert result.statistic == pytest.approx(expected.statistic, abs=ABS, rel=REL)
    assert result.pvalue == pytest.approx(expected.pvalue, abs=ABS, rel=REL)


def test_categories_empty_on_both_sides_are_dropped() -> None:
    plain = chi2_test({"a": 10, "b": 20}, {"a": 15, "b": 5})
    padded = chi2_test({"a": 10, "b": 20, "z": 0}, {"a": 15, "b": 5, "z": 0, "y": 0})
    assert plain == padded


def test_undefined_or_trivial_tables() -> None:
    assert chi2_test({"a": 10}, {}) is None
    assert chi2_test({}, {"a": 3}) is None
    assert chi2_test({"a": 0}, {"a": 0}) is None
    single = chi2_test({"a": 10}, {"a": 3})
    assert single is not None
    assert (single.statistic, single.pvalue) == (0.0, 1.0)


def test_identical_shares_score_zero_and_a_shift_is_significant() -> None:
    same = chi2_test({"a": 200, "b": 800}, {"a": 20, "b": 80})
    assert same is not None
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    assert same.pvalue == pytest.approx(1.0)
    shifted = chi2_test({"a": 2000, "b": 8000}, {"a": 400, "b": 600})
    assert shifted is not None
    assert shifted.pvalue < 1e-6
