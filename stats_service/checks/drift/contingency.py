"""Chi-square test of homogeneity between the reference's and the window's categories."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from stats_service.checks.drift import TestResult


def chi2_test(reference: Mapping[str, float], window: Mapping[str, float]) -> TestResult | None:
    """Pearson's chi-square on the 2 x k table of counts over the union of categories.

    Categories counted on neither side are dropped (they carry no information and would
    make an expected frequency 0). No Yates correction, so the statistic means the same
    whatever k is (scipy applies it by default when k = 2). Defined cases:
    - either side without any count: None (nothing to compare);
    - a single category left: statistic 0, p-value 1 (both sides are all that category).
    """
    categories = list(dict.fromkeys([*reference, *window]))
    table = np.array(
        [
            [float(reference.get(c, 0)) for c in categories],
            [float(window.get(c, 0)) for c in categories],
        ]
    ).reshape(2, len(categories))
    if np.any(table < 0):
        raise ValueError("category counts must be >= 0")
    table = table[:, table.sum(axis=0) > 0]
    if table[0].sum() == 0 or table[1].sum() == 0:
        return None
    if table.shape[1] < 2:
        return TestResult(0.0, 1.0)
    result = stats.chi2_contingency(table, correction=False)
    return TestResult(float(result.statistic), float(result.pvalue))
