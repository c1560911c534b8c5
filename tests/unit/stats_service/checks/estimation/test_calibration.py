"""Calibration against scikit-learn on the same inputs, and when it is (not) applied."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import _sigmoid_calibration  # type: ignore[import-untyped]
from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]

from stats_service.checks.estimation.calibration import (
    choose_calibrator,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
)


def overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(n), 2)  # ties
    return p, rng.random(n) < p**2  # the true chance is p squared


def test_isotonic_matches_sklearn() -> None:
    p, y = overconfident(3000)
    expected = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    new = np.random.default_rng(1).random(200) * 1.2 - 0.1  # also beyond the fitted range
    assert fit_isotonic(p, y).apply(new) == pytest.approx(expected.predict(new), abs=1e-12)


def test_platt_matches_sklearn() -> None:
    p, y = overconfident(3000)
    a, b = _sigmoid_calibration(p, y.astype(int))
    fitted = fit_platt(p, y)
    assert (fitted.a, fitted.b) == pytest.approx((a, b), rel=1e-6)


def test_miscalibrated_scores_are_calibrated_and_calibrated_ones_kept_as_they_are() -> None:
    p, y = overconfident(5000)
    calibrator, why = choose_calibrator(p, y, "isotonic")
    assert calibrator.method == "isotonic", why
    assert expected_calibration_error(calibrator.apply(p), y) < expected_calibration_error(p, y)
    rng = np.random.default_rng(3)
    honest = np.round(rng.random(5000), 2)
    calibrator, why = choose_calibrator(honest, rng.random(5000) < honest, "isotonic")
    # Calibrated already: mapped or not (the ECE of 5,000 rows is noisy), nearly unchanged.
    assert np.mean(np.abs(calibrator.apply(honest) - honest)) < 0.03, why


def test_one_class_reference_is_not_calibrated() -> None:
    calibrator, why = choose_calibrator(np.full(100, 0.9), np.ones(100, dtype=bool), "platt")
    assert calibrator.method == "none" and "one class" in why
