"""Data quality of a window: missing, unseen-category and out-of-range rates per feature.

Each window ratio is set next to the same ratio in the training data, so a person (or an
alert rule) can tell a new problem from one the model was trained with.

Rules (window side):
- missing ratio = missing / all rows of the column (a row without a usable value: null,
  absent or of the wrong type, as in the baseline).
- unseen ratio (categorical) = non-missing values outside the baseline's vocabulary /
  non-missing values. `CategoricalSummary.other` (values a store did not break down)
  counts as outside. Following `baseline.contents`, a value outside the vocabulary is unseen
  only when the baseline's `other_proportion` is 0: when the vocabulary was capped, such a
  value may be a rare training value folded into `__other__`, and nothing tells the two
  apart, so the ratio is 0 and the growth of `__other__` is left to the drift tests.
  A feature without any training value has an empty vocabulary: every value is unseen.
- out-of-range ratio (numeric) = (below_minimum + above_maximum) / non-missing values, on
  the training [minimum, maximum]. A feature without any training value has no range:
  every value is out of it.
- A column with no rows has every ratio 0.0; an all-missing column has missing ratio 1.0
  and the other two 0.0 (they are over no values). No ratio is ever NaN.

Baseline side: missing = `missing_rate` (its count includes type mismatches, like the
window's). Unseen and out-of-range are 0: the vocabulary and the [min, max] are taken
from the very same data. The builder's `issue_counts` do hold `unseen_category:*` and
`out_of_range:*` counts, but against the schema's declared `categories` / `range`, a
different reference from the training vocabulary and range the window is measured
against; mixing them would set two unrelated numbers side by side, so they are not used.
"""

from __future__ import annotations

from stats_service.baseline.contents import (
    Baseline,
    CategoricalFeatureBaseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.checks.results import FeatureQuality
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    WindowSummary,
)

__all__ = ["evaluate_quality"]


def evaluate_quality(baseline: Baseline, summary: WindowSummary) -> tuple[FeatureQuality, ...]:
    """One `FeatureQuality` per baseline feature present in `summary.columns`, in baseline
    order. A column whose kind differs from its baseline feature's raises TypeError."""
    return tuple(
        _feature_quality(feature, summary.columns[feature.name])
        for feature in baseline.features
        if feature.name in summary.columns
    )


def _feature_quality(feature: FeatureBaseline, column: ColumnSummary) -> FeatureQuality:
    unseen = out_of_range = 0.0
    if isinstance(feature, NumericFeatureBaseline):
        if not isinstance(column, NumericSummary):
            raise TypeError(f"feature {feature.name!r}: numeric baseline, categorical window")
        out_of_range = _out_of_range_ratio(feature, column)
    else:
        if not isinstance(column, CategoricalSummary):
            raise TypeError(f"feature {feature.name!r}: categorical baseline, numeric window")
        unseen = _unseen_ratio(feature, column)
    return FeatureQuality(
        feature=feature.name,
        missing_ratio=_ratio(column.missing, column.total),
        unseen_ratio=unseen,
        out_of_range_ratio=out_of_range,
        baseline_missing_ratio=feature.missing_rate,
        baseline_unseen_ratio=0.0,
        baseline_out_of_range_ratio=0.0,
    )


def _out_of_range_ratio(feature: NumericFeatureBaseline, column: NumericSummary) -> float:
    if feature.minimum is None or feature.maximum is None:
        # No training value, so no range: summaries do not count against one.
        return 1.0 if column.present else 0.0
    return _ratio(column.below_minimum + column.above_maximum, column.present)


def _unseen_ratio(feature: CategoricalFeatureBaseline, column: CategoricalSummary) -> float:
    if feature.other_proportion > 0.0:
        return 0.0
    vocabulary = frozenset(feature.categories)
    outside = column.other + sum(n for value, n in column.counts.items() if value not in vocabulary)
    return _ratio(outside, column.present)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
