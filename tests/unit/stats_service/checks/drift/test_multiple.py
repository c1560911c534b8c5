"""Benjamini-Hochberg adjusted p-values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stats_service.checks.drift.multiple import benjamini_hochberg


def test_hand_worked() -> None:
    # Sorted: 0.01*4/1 = 0.04, 0.03*4/2 = 0.06, 0.04*4/3 = 0.0533, 0.2*4/4 = 0.2;
    # then the running minimum from the largest: 0.04, 0.0533, 0.0533, 0.2.
    adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(adjusted, [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=1e-12)


def test_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 50):
        p = rng.random(m) ** 3
        p[: m // 3] = p[0]  # ties
        expected = stats.false_discovery_control(p, method="bh")
        np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-9, atol=1e-9)


def test_monotone_and_clipped_to_one() -> None:
    p = np.array([0.9, 0.5, 0.95, 0.001, 0.99])
    adjusted = benjamini_hochberg(p)
    assert np.all(adjusted <= 1.0)
    assert np.all(adjusted >= p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)


def test_edge_inputs() -> None:
    assert benjamini_hochberg([]).shape == (0,)
    assert benjamini_hochberg([0.3]).tolist() == [0.3]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.1, float("nan")])
    with pytest.raises(ValueError, match="one-dimensional"):
        benjamini_hochberg([[0.1]])
