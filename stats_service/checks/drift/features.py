"""Per-feature drift of one window against the baseline: every method that applies.

Numeric features: psi, jensenshannon, hellinger (on the baseline's bins + a missing bin),
wasserstein (normalised by the reference std) and ks (on the samples). Categorical: psi,
jensenshannon, hellinger (on the baseline's categories + `__other__` + `__unseen__` +
missing) and chi2 (non-missing values, over the union of categories). A window value
outside the vocabulary goes to `__other__` when the baseline folded categories there
(other_proportion > 0: it may be a rare training value), else to `__unseen__`; so does
`CategoricalSummary.other`, the values a store did not break down.

ks and chi2 p-values are Benjamini-Hochberg adjusted per method across the window's
features; the prediction column is not a feature and keeps its own, unadjusted p-values.
`detected` = the detection method's score > its calibrated threshold.

Defined edge cases (None, never NaN, never an exception):
- a window without rows: every score None, nothing detected;
- a window whose values are all missing: binned scores compare the missing bins (a
  baseline without missing values then scores JS 1); ks, wasserstein, chi2 None;
- an empty baseline feature (count 0): its reference is all missing, compared as above;
  ks, wasserstein, chi2 None. With no rows at all, binned scores are None too;
- a baseline with an empty sample: ks and wasserstein None;
- a constant feature: its values fill one bin, so a window of the same constant scores 0;
  Wasserstein is then scaled by max(|mean|, 1) (see drift.samples.wasserstein_scale);
- a single category on both sides: binned scores 0, chi2 statistic 0, p-value 1;
- a window of unseen values only: JS and Hellinger 1.
A window whose summary does not match the baseline (a missing column, another kind, other
bins) is a caller's bug and raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from stats_service.baseline.contents import (
    Baseline,
    CategoricalFeatureBaseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.checks.drift import TestResult
from stats_service.checks.drift.binned import BINNED_METHODS, shares
from stats_service.checks.drift.calibration import (
    PREDICTION,
    Calibration,
    feature_kind,
    reference_bins,
)
from stats_service.checks.drift.contingency import chi2_test
from stats_service.checks.drift.multiple import benjamini_hochberg
from stats_service.checks.drift.samples import (
    ks_merged,
    merge,
    wasserstein_merged,
    wasserstein_scale,
)
from stats_service.checks.drift.settings import DriftSettings
from stats_service.checks.results import FeatureDrift, Histogram, MethodResult
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    WindowSummary,
)

FloatArray = npt.NDArray[np.float64]
OTHER, UNSEEN, MISSING = "__other__", "__unseen__", "missing"
TESTS = ("ks", "chi2")


def evaluate_features(
    baseline: Baseline,
    summary: WindowSummary,
    calibration: Calibration,
    settings: DriftSettings,
) -> tuple[tuple[FeatureDrift, ...], FeatureDrift | None]:
    """(one FeatureDrift per baseline feature, in baseline order; the prediction column's,
    when both the baseline and the window have one, else None)."""
    features = []
    for feature in baseline.features:
        column = summary.columns.get(feature.name)
        if column is None:
            raise ValueError(f"window summary has no column {feature.name!r}")
        features.append(_evaluate(feature.name, feature, column, calibration, settings))
    features = _adjust_pvalues(features)
    prediction = None
    if baseline.prediction is not None and summary.prediction is not None:
        prediction = _evaluate(
            PREDICTION, baseline.prediction, summary.prediction, calibration, settings
        )
    return tuple(features), prediction


def _adjust_pvalues(features: list[FeatureDrift]) -> list[FeatureDrift]:
    adjusted: dict[tuple[int, str], float] = {}
    for method in TESTS:
        tested = [
            (i, result.pvalue)
            for i, drift in enumerate(features)
            if (result := drift.method(method)) is not None and result.pvalue is not None
        ]
        if tested:
            values = benjamini_hochberg([p for _, p in tested])
            adjusted.update(
                {(i, method): float(v) for (i, _), v in zip(tested, values, strict=True)}
            )
    return [
        replace(
            drift,
            methods=tuple(
                replace(m, pvalue=adjusted[i, m.method]) if (i, m.method) in adjusted else m
                for m in drift.methods
            ),
        )
        for i, drift in enumerate(features)
    ]


@dataclass(frozen=True)
class _Binned:
    labels: tuple[str, ...]
    reference: FloatArray  # shares
    window_counts: FloatArray


def _evaluate(
    name: str,
    feature: FeatureBaseline,
    column: ColumnSummary,
    calibration: Calibration,
    settings: DriftSettings,
) -> FeatureDrift:
    kind = feature_kind(feature)
    tests: dict[str, TestResult | None] = {}
    sample_scores: dict[str, tuple[float | None, int]] = {}
    if isinstance(feature, NumericFeatureBaseline):
        if not isinstance(column, NumericSummary):
            raise ValueError(f"{name!r} is numeric in the baseline, not in the window")
        binned = _numeric_bins(name, feature, column)
        merged = merge(column.sample, feature.sample)  # both statistics from one sort
        scale = wasserstein_scale(feature.std, feature.mean)
        distance = None if merged is None else wasserstein_merged(merged, scale)
        sample_scores["wasserstein"] = (distance, 0 if merged is None else len(merged.window))
        tests["ks"] = None if merged is None else ks_merged(merged)
    else:
        if not isinstance(column, CategoricalSummary):
            raise ValueError(f"{name!r} is categorical in the baseline, not in the window")
        binned = _categorical_bins(feature, column)
        tests["chi2"] = _chi2(feature, column)
    rows = int(binned.window_counts.sum())
    window = shares(binned.window_counts)
    defined = rows > 0 and binned.reference.sum() > 0
    methods: list[MethodResult] = []
    for method, statistic in BINNED_METHODS.items():
        score = float(statistic(binned.reference, window)) if defined else None
        methods.append(_effect(method, score, name, rows, calibration))
    for method, (score, n) in sample_scores.items():
        methods.append(_effect(method, score, name, n, calibration))
    for method, test in tests.items():
        if test is None:
            methods.append(MethodResult(method, None))
        else:
            methods.append(MethodResult(method, test.statistic, pvalue=test.pvalue))
    detection = settings.detection_method(name, kind)
    decisive = next(m for m in methods if m.method == detection)
    detected = (
        decisive.score is not None
        and decisive.threshold is not None
        and decisive.score > decisive.threshold
    )
    return FeatureDrift(
        feature=name,
        kind=kind,
        samples=column.present,
        methods=tuple(methods),
        detection_method=detection,
        detected=detected,
        histogram=Histogram(
            bins=binned.labels,
            baseline=tuple(binned.reference.tolist()),
            window=tuple(window.tolist()),
        ),
    )


def _effect(
    method: str, score: float | None, name: str, n: int, calibration: Calibration
) -> MethodResult:
    if score is None:
        return MethodResult(method, None)
    return MethodResult(method, score, threshold=calibration.threshold(name, method, n))


def _numeric_bins(name: str, feature: NumericFeatureBaseline, column: NumericSummary) -> _Binned:
    if len(column.counts) != len(feature.proportions):
        raise ValueError(
            f"{name!r}: window counted on {len(column.counts)} bins, "
            f"the baseline has {len(feature.proportions)}"
        )
    edges = feature.edges
    labels = tuple(f"[{edges[i]:.6g}, {edges[i + 1]:.6g})" for i in range(len(edges) - 1))
    counts = np.array([*column.counts, column.missing], dtype=np.float64)
    return _Binned((*labels, MISSING), reference_bins(feature).shares, counts)


def _categorical_bins(feature: CategoricalFeatureBaseline, column: CategoricalSummary) -> _Binned:
    index = {category: i for i, category in enumerate(feature.categories)}
    k = len(feature.categories)
    outside = k if feature.other_proportion > 0 else k + 1  # __other__ or __unseen__
    counts = np.zeros(k + 3, dtype=np.float64)
    # One step per distinct value, not per row: summaries are already counted.
    for value, count in column.counts.items():
        counts[index.get(value, outside)] += count
    counts[outside] += column.other
    counts[k + 2] = column.missing
    labels = (*feature.categories, OTHER, UNSEEN, MISSING)
    return _Binned(labels, reference_bins(feature).shares, counts)


def _chi2(feature: CategoricalFeatureBaseline, column: CategoricalSummary) -> TestResult | None:
    """Counts of non-missing values: the baseline's from its shares (exact: they are
    count / total), the window's with unseen values kept apart, or folded into __other__
    when the baseline has one (it may hold them)."""
    reference: dict[str, float] = {
        c: float(np.rint(p * feature.count))
        for c, p in zip(feature.categories, feature.proportions, strict=True)
    }
    reference[OTHER] = float(np.rint(feature.other_proportion * feature.count))
    folded = feature.other_proportion > 0
    known = set(feature.categories)
    window: dict[str, float] = {}
    remainder = float(column.other)
    for value, count in column.counts.items():
        if value in known or not folded:
            window[value] = window.get(value, 0.0) + count
        else:
            remainder += count
    if remainder:
        key = OTHER if folded else UNSEEN
        window[key] = window.get(key, 0.0) + remainder
    return chi2_test(reference, window)
