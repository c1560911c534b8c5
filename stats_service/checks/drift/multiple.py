"""Multiple testing: one p-value per feature per window is many tests at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def benjamini_hochberg(pvalues: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values, in the input's order.

    The adjusted p-value of the i-th smallest of m is min over j >= i of p_(j) * m / j,
    clipped to 1: monotone in the raw p-values, and rejecting those <= q controls the false
    discovery rate at q (for independent or positively dependent tests). The same as
    scipy.stats.false_discovery_control(pvalues, method="bh").
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional, not of shape {p.shape}")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    result = np.empty(m, dtype=np.float64)
    result[order] = adjusted
    return result
