"""PSI, Jensen-Shannon and Hellinger over shares: textbook values, scipy, vectorisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon
from scipy.stats import entropy as scipy_entropy

from stats_service.checks.drift.binned import PSI_EPSILON, hellinger, jensenshannon, psi, shares


def test_psi_hand_worked() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    r, w = [0.5, 0.5], [0.25, 0.75]
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert float(psi(r, w)) == pytest.approx(expected, rel=1e-12)
    # sum (w - r) ln(w / r) is the symmetrised Kullback-Leibler divergence (no share
    # below PSI_EPSILON here): KL(w || r) + KL(r || w), as scipy computes them.
    assert expected == pytest.approx(scipy_entropy(w, r) + scipy_entropy(r, w), rel=1e-12)


def test_psi_is_symmetric_and_zero_on_identical_shares() -> None:
    r, w = [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]
    assert float(psi(r, w)) == pytest.approx(float(psi(w, r)), rel=1e-12)
    assert float(psi(r, r)) == 0.0


def test_psi_counts_an_empty_bin_as_epsilon() -> None:
    # Reference [1, 0] -> [1, 1e-4]: (0.5 - 1) ln(0.5 / 1) + (0.5 - 1e-4) ln(0.5 / 1e-4)
    expected = 0.5 * math.log(2) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert float(psi([1.0, 0.0], [0.5, 0.5])) == pytest.approx(expected, rel=1e-12)
    assert PSI_EPSILON == 1e-4
    assert math.isfinite(float(psi([1.0, 0.0], [0.0, 1.0])))


def test_jensenshannon_hand_worked() -> None:
    # r = [0.5, 0.5], w = [1, 0], m = [0.75, 0.25]
    kl_r = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)  # 0.207519
    kl_w = 1.0 * math.log2(1.0 / 0.75)  # 0.415037
    expected = math.sqrt((kl_r + kl_w) / 2)  # sqrt(0.311278) = 0.557923
    assert float(jensenshannon([0.5, 0.5], [1.0, 0.0])) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(scipy_jensenshannon([0.5, 0.5], [1.0, 0.0], base=2), rel=1e-12)


def test_jensenshannon_bounds() -> None:
    assert float(jensenshannon([1.0, 0.0], [0.0, 1.0])) == 1.0  # disjoint: the maximum
    assert float(jensenshannon([0.3, 0.7], [0.3, 0.7])) == 0.0


def test_jensenshannon_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 5, 11, 40):
        for _ in range(20):
            r, w = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k) * 0.3)
            w[rng.random(k) < 0.2] = 0.0  # some empty bins
            w = w / w.sum()
            expected = scipy_jensenshannon(r, w, base=2)
            assert float(jensenshannon(r, w)) == pytest.approx(expected, abs=1e-12)


def test_hellinger_hand_worked() -> None:
    # 1 - (sqrt(0.5 * 1) + sqrt(0.5 * 0)) = 1 - 0.707107 -> sqrt = 0.541196
    expected = math.sqrt(1 - math.sqrt(0.5))
    assert float(hellinger([0.5, 0.5], [1.0, 0.0])) == pytest.approx(expected, rel=1e-12)
    # The same as the Euclidean distance of square roots / sqrt(2)
    r, w = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.2])
    euclid = np.linalg.norm(np.sqrt(r) - np.sqrt(w)) / math.sqrt(2)
    assert float(hellinger(r, w)) == pytest.approx(euclid, rel=1e-12)
    assert float(hellinger([1.0, 0.0], [0.0, 1.0])) == 1.0


@pytest.mark.parametrize("statistic", [psi, jensenshannon, hellinger])
def test_vectorised_over_leading_axes(statistic: object) -> None:
    assert callable(statistic)
    rng = np.random.default_rng(5)
    reference = rng.dirichlet(np.ones(6))
    windows = rng.dirichlet(np.ones(6), size=(4, 50))
    scores = statistic(reference, windows)
    assert scores.shape == (4, 50)
    one_by_one = [[float(statistic(reference, w)) for w in row] for row in windows]
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-12, atol=1e-15)
    paired = statistic(np.broadcast_to(reference, windows.shape), windows)
    np.testing.assert_allclose(paired, scores, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("statistic", [psi, jensenshannon, hellinger])
def test_bins_empty_on_both_sides_change_nothing(statistic: object) -> None:
    assert callable(statistic)
    r, w = [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]
    padded = float(statistic([0.2, 0.0, 0.3, 0.5, 0.0], [0.4, 0.0, 0.4, 0.2, 0.0]))
    assert padded == pytest.approx(float(statistic(r, w)), rel=1e-12)


def test_shares_normalise_counts_and_keep_empty_rows_empty() -> None:
    np.testing.assert_array_equal(shares([1, 3]), [0.25, 0.75])
    np.testing.assert_array_equal(shares([[0, 0], [2, 2]]), [[0.0, 0.0], [0.5, 0.5]])
