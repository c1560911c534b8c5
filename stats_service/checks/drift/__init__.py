"""Drift statistics: one concern per module, pure functions over shares, counts or samples.

- `binned`: PSI, Jensen-Shannon distance, Hellinger distance over shares on the same bins,
  vectorised over leading axes (calibration scores thousands of resamples at once);
- `samples`: KS two-sample test and Wasserstein distance over raw values;
- `contingency`: chi-square test over the union of categories;
- `multiple`: Benjamini-Hochberg adjusted p-values across features;
- `settings`: `DriftSettings`, the false-alarm rate, floors and methods.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: its statistic and its (unadjusted) p-value."""

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    pvalue: float
