"""Distances between two distributions given as shares on the same bins.

Every function takes `reference` and `window` shares (non-negative, summing to 1 along the
last axis) and broadcasts over the leading axes: a (k,) reference against an (R, k) stack
of resampled windows gives R scores in one call, which is what calibration needs.
A (k,) pair gives a 0-d array; `float()` it.

Bins empty on both sides contribute nothing to any of the three, so adding empty bins
(an unused `__unseen__`, a bin of a constant feature) never changes a score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
from scipy.special import rel_entr

FloatArray = npt.NDArray[np.float64]

# Shares of 0 make PSI infinite; like Evidently, a zero share counts as 1e-4 (one value in
# 10,000). It bounds one bin's contribution to about 9.2 * its other share.
PSI_EPSILON = 1e-4


def shares(counts: npt.ArrayLike) -> FloatArray:
    """Counts -> shares along the last axis; a row with no counts stays all zeros."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    result: FloatArray = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return result


def psi(
    reference: npt.ArrayLike, window: npt.ArrayLike, epsilon: float = PSI_EPSILON
) -> FloatArray:
    """Population stability index: sum over bins of (w - r) * ln(w / r), natural log.

    Shares below `epsilon` are raised to it (not renormalised, as in Evidently). 0 for
    identical shares, unbounded above; rules of thumb read 0.1 as moderate, 0.25 as large.
    """
    r = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    w = np.maximum(np.asarray(window, dtype=np.float64), epsilon)
    result: FloatArray = np.sum((w - r) * np.log(w / r), axis=-1)
    return result


def jensenshannon(reference: npt.ArrayLike, window: npt.ArrayLike) -> FloatArray:
    """Jensen-Shannon distance in base 2: sqrt((KL(r || m) + KL(w || m)) / 2), m = (r + w) / 2.

    Equals scipy.spatial.distance.jensenshannon(r, w, base=2). Bounded in [0, 1]: 1 when
    the two put their mass on disjoint bins (an unseen-only window). Zero shares need no
    smoothing: 0 * log 0 = 0.
    """
    r = np.asarray(reference, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    m = (r + w) / 2.0
    divergence = (rel_entr(r, m).sum(axis=-1) + rel_entr(w, m).sum(axis=-1)) / (2 * math.log(2))
    # Rounding can leave the divergence a hair outside [0, 1]; the distance must not be NaN.
    result: FloatArray = np.sqrt(np.clip(divergence, 0.0, 1.0))
    return result


def hellinger(reference: npt.ArrayLike, window: npt.ArrayLike) -> FloatArray:
    """Hellinger distance: sqrt(1 - sum over bins of sqrt(r * w)), bounded in [0, 1].

    The same as ||sqrt(r) - sqrt(w)||_2 / sqrt(2); 1 for disjoint supports.
    """
    r = np.asarray(reference, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    affinity = np.sqrt(r * w).sum(axis=-1)
    result: FloatArray = np.sqrt(np.clip(1.0 - affinity, 0.0, 1.0))
    return result


BinnedStatistic = Callable[[npt.ArrayLike, npt.ArrayLike], FloatArray]
# The effect sizes computed on bins, by method name, in the order results list them.
BINNED_METHODS: Mapping[str, BinnedStatistic] = {
    "psi": psi,
    "jensenshannon": jensenshannon,
    "hellinger": hellinger,
}
