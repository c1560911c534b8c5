"""Calibration of one class's probabilities on the reference's labelled rows.

CBPE reads a calibrated probability as the chance the row is of that class, so the
reference's probabilities are checked first and mapped only where that helps:
- isotonic regression (scikit-learn's `IsotonicRegression(out_of_bounds="clip")`:
  pool-adjacent-violators over the distinct scores, each weighted by its rows; new
  scores interpolated linearly between the fitted points, clipped at the ends);
- Platt scaling (scikit-learn's `_sigmoid_calibration` on the probability itself:
  p' = 1 / (1 + exp(a p + b)), fitted by Newton's method on the log loss against Platt's
  smoothed targets (n+ + 1) / (n+ + 2) and 1 / (n- + 2)).

Whether to calibrate (`choose_calibrator`): the expected calibration error (ECE: equal-
width bins over [0, 1], the row-weighted mean of |mean score - share positive|) of the
raw scores against that of out-of-fold calibrated scores (each fold calibrated on the
others, so the calibrator is not judged on its own training rows): calibrated when that
is lower, as NannyML decides. A reference with one class only, or too few rows for the
folds, stays uncalibrated and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import isotonic_regression

from exporter.features.table import BoolArray, FloatArray

CalibrationMethod = Literal["isotonic", "platt"]
FOLDS = 5
ECE_BINS = 10
MIN_ROWS = 2 * FOLDS


@dataclass(frozen=True, eq=False)
class Calibrator:
    method: Literal["none", "isotonic", "platt"]
    x: FloatArray  # isotonic: the distinct reference scores; else empty
    y: FloatArray  # isotonic: their fitted probabilities
    a: float = 0.0  # platt
    b: float = 0.0

    def apply(self, p: FloatArray) -> FloatArray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            result: FloatArray = np.interp(p, self.x, self.y)
            return result
        if self.method == "platt":
            with np.errstate(over="ignore"):
                platt: FloatArray = 1.0 / (1.0 + np.exp(self.a * p + self.b))
            return platt
        return p


IDENTITY = Calibrator("none", np.empty(0), np.empty(0))


def fit_isotonic(p: FloatArray, y: BoolArray) -> Calibrator:
    x, inverse = np.unique(p, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=y.astype(np.float64)) / weights
    fitted = isotonic_regression(means, weights=weights, increasing=True).x
    return Calibrator("isotonic", x, np.clip(fitted, 0.0, 1.0))


def fit_platt(p: FloatArray, y: BoolArray, iterations: int = 100) -> Calibrator:
    n_pos = int(np.count_nonzero(y))
    n_neg = len(y) - n_pos
    target = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    # scikit-learn's starting point: a = 0, b = log((n- + 1) / (n+ + 1)).
    a, b = 0.0, math.log((n_neg + 1.0) / (n_pos + 1.0))
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(np.clip(a * p + b, -700, 700)))
        # Loss: -sum t log q + (1 - t) log(1 - q), with q = sigmoid(-(a p + b)).
        residual = target - q
        gradient = np.array([np.dot(residual, p), residual.sum()])
        weight = q * (1.0 - q)
        hessian = np.array(
            [[np.dot(weight, p * p), np.dot(weight, p)], [np.dot(weight, p), weight.sum()]]
        )
        hessian += 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return Calibrator("platt", np.empty(0), np.empty(0), a, b)


def expected_calibration_error(p: FloatArray, y: BoolArray, bins: int = ECE_BINS) -> float:
    which = np.clip((p * bins).astype(np.intp), 0, bins - 1)
    score = np.bincount(which, weights=p, minlength=bins)
    positives = np.bincount(which, weights=y.astype(np.float64), minlength=bins)
    return float(np.abs(score - positives).sum() / max(len(p), 1))


def fit(method: CalibrationMethod, p: FloatArray, y: BoolArray) -> Calibrator:
    return fit_isotonic(p, y) if method == "isotonic" else fit_platt(p, y)


def choose_calibrator(
    p: FloatArray, y: BoolArray, method: CalibrationMethod, seed: int = 0
) -> tuple[Calibrator, str]:
    """The calibrator to use for scores `p` of rows whose class membership is `y`, and
    a sentence saying what was decided and why."""
    if len(p) < MIN_ROWS or y.all() or not y.any():
        return IDENTITY, f"not calibrated: fewer than {MIN_ROWS} rows or one class only"
    folds = np.random.default_rng(seed).permutation(len(p)) % FOLDS
    out_of_fold = np.empty(len(p))
    for fold in range(FOLDS):
        held = folds == fold
        rest = ~held
        if y[rest].all() or not y[rest].any():
            return IDENTITY, "not calibrated: a fold has one class only"
        out_of_fold[held] = fit(method, p[rest], y[rest]).apply(p[held])
    raw = expected_calibration_error(p, y)
    calibrated = expected_calibration_error(out_of_fold, y)
    if calibrated < raw:
        return fit(method, p, y), f"{method}: ECE {raw:.4f} raw, {calibrated:.4f} out of fold"
    return IDENTITY, f"not calibrated: ECE {raw:.4f} raw, {calibrated:.4f} with {method}"
