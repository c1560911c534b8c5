"""Two-sample statistics over raw values: KS test and normalised Wasserstein distance.

Only finite values take part: NaN is missing, and +-inf (which `float("inf")` lets
through the feature code) has no place in a distance between distributions. Either side
without a finite value makes both statistics undefined: None, never NaN.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from stats_service.checks.drift import TestResult

FloatArray = npt.NDArray[np.float64]
EXACT_KS_PAIRS = 10_000_000


def finite(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    result: FloatArray = array[np.isfinite(array)]
    return result


def ks_method(n: int, m: int) -> str:
    """scipy's "auto" (the exact p-value up to 10,000 values a side), but the asymptotic
    p-value beyond EXACT_KS_PAIRS pairs: the exact one costs tens of milliseconds per
    feature there (a 10,000-row window against a 5,000-value sample) and differs from the
    asymptotic one in the third digit."""
    return "auto" if n * m <= EXACT_KS_PAIRS else "asymp"


def ks_test(window: npt.ArrayLike, reference: npt.ArrayLike) -> TestResult | None:
    """Two-sample Kolmogorov-Smirnov: scipy.stats.ks_2samp, two-sided, method `ks_method`."""
    w, r = finite(window), finite(reference)
    if len(w) == 0 or len(r) == 0:
        return None
    result = stats.ks_2samp(w, r, method=ks_method(len(w), len(r)))
    return TestResult(float(result.statistic), float(result.pvalue))


def wasserstein_scale(std: float | None, mean: float | None) -> float:
    """What a Wasserstein distance is divided by: the reference's standard deviation.

    A constant reference (std 0) has no spread to measure against; max(|mean|, 1) makes the
    score a relative change for large values and an absolute one near zero, so a constant
    0 that becomes 0.3 scores 0.3 and a constant 1000 that becomes 1001 scores 0.001.
    """
    if std is not None and math.isfinite(std) and std > 0:
        return std
    if mean is not None and math.isfinite(mean):
        return max(abs(mean), 1.0)
    return 1.0


def wasserstein(window: npt.ArrayLike, reference: npt.ArrayLike, scale: float) -> float | None:
    """scipy.stats.wasserstein_distance(window, reference) / scale: the mean distance the
    window's values must move to match the reference, in reference standard deviations
    (see `wasserstein_scale`). 0.5 is a shift of the mean by half a std."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"wasserstein scale must be finite and > 0, not {scale}")
    w, r = finite(window), finite(reference)
    if len(w) == 0 or len(r) == 0:
        return None
    return float(stats.wasserstein_distance(w, r)) / scale
