"""A candidate model against the primary over one window: agreement, distance, performance.

Pure computation over `CandidateWindow` (stats_service.windows.candidates):
- agreement (a shadow: its rows are paired with the primary's answers to the same
  request rows): the share of pairs with the same predicted label, over the pairs with a
  label on both sides, labels compared as canonical strings (`canonical_label`: a posted
  `true` and a logged "1" are one class). And the mean absolute difference of the numeric
  prediction value and of the score, over the pairs where both are finite. A canary
  answered other clients: nothing to pair, so neither;
- distance between the two sides' prediction distributions, with the drift statistics
  (stats_service.checks.drift): for labels, psi, jensenshannon and hellinger over the
  union of the classes seen, and chi2 (statistic, p-value); for numeric predictions the
  same three over the baseline's prediction bins (the primary's deciles when the baseline
  has no numeric prediction), ks (statistic, p-value) and wasserstein normalised by the
  baseline prediction's std (the primary's without one). Labels are compared where the
  baseline's prediction is categorical, numbers where it is numeric; without a baseline
  prediction, labels when any row has one;
- performance of each side over its rows whose ground truth arrived
  (stats_service.checks.performance, the schema's task): for a shadow the very same rows.

Defined edge cases: fewer rows on a side than `min_samples` is "insufficient" (counts
only); a side without any usable prediction gives no distance; no pair with labels on
both sides gives agreement None; no labelled row gives performance None. Never NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from exporter.schema import PredictionSpec
from stats_service.baseline.contents import (
    CategoricalFeatureBaseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.checks.drift.binned import BINNED_METHODS, shares
from stats_service.checks.drift.contingency import chi2_test
from stats_service.checks.drift.samples import finite, ks_test, wasserstein, wasserstein_scale
from stats_service.checks.performance import canonical_label, evaluate_performance
from stats_service.checks.results import MethodResult, PerformanceResult, Status
from stats_service.windows.candidates import CandidateWindow, Predictions
from stats_service.windows.summary import FloatArray, Labelled

DECILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True)
class CandidateComparison:
    model: str
    window: str
    candidate: str
    role: str  # shadow | canary
    start_ts: float
    end_ts: float
    rows: int  # the candidate's records in the window
    status: Status  # ok | insufficient
    message: str = ""
    primary_samples: int = 0  # answers compared on each side (a shadow: its pairs)
    candidate_samples: int = 0
    agreement: float | None = None  # share of pairs with the same predicted label
    agreement_samples: int = 0  # pairs with a predicted label on both sides
    # "value", "score": mean |candidate - primary| over the pairs where both are finite.
    mean_abs_diff: Mapping[str, float] = field(default_factory=dict)
    distance: tuple[MethodResult, ...] = ()
    primary_performance: PerformanceResult | None = None
    candidate_performance: PerformanceResult | None = None


def compare_candidate(
    window: CandidateWindow,
    reference: FeatureBaseline | None,
    spec: PredictionSpec | None,
    min_samples: int,
) -> CandidateComparison:
    """The candidate against the primary; `reference` is the baseline's prediction."""
    primary, answers = window.primary, window.answers
    common = {
        "model": window.model,
        "window": window.window,
        "candidate": window.candidate,
        "role": window.role,
        "start_ts": window.start_ts,
        "end_ts": window.end_ts,
        "rows": window.rows,
        "primary_samples": primary.count,
        "candidate_samples": answers.count,
    }
    fewest = min(primary.count, answers.count)
    if fewest < min_samples:
        return CandidateComparison(
            **common,  # type: ignore[arg-type]
            status="insufficient",
            message=f"{fewest} answers to compare, fewer than min_samples={min_samples}",
        )
    agreement, agreed_on = (None, 0)
    differences: dict[str, float] = {}
    if window.paired:
        agreement, agreed_on = label_agreement(primary.label, answers.label)
        differences = mean_abs_differences(primary, answers)
    return CandidateComparison(
        **common,  # type: ignore[arg-type]
        status="ok",
        agreement=agreement,
        agreement_samples=agreed_on,
        mean_abs_diff=differences,
        distance=prediction_distance(primary, answers, reference),
        primary_performance=evaluate_performance(spec, labelled(primary)),
        candidate_performance=evaluate_performance(spec, labelled(answers)),
    )


def label_agreement(
    primary: Sequence[str | None], candidate: Sequence[str | None]
) -> tuple[float | None, int]:
    """(share of pairs with the same label, pairs with a label on both sides)."""
    ours, theirs = _canonical(primary), _canonical(candidate)
    both = [(a, b) for a, b in zip(ours, theirs, strict=True) if a is not None and b is not None]
    if not both:
        return None, 0
    return sum(a == b for a, b in both) / len(both), len(both)


def mean_abs_differences(primary: Predictions, candidate: Predictions) -> dict[str, float]:
    out = {}
    for name, a, b in (
        ("value", primary.value, candidate.value),
        ("score", primary.score, candidate.score),
    ):
        both = np.isfinite(a) & np.isfinite(b)
        if both.any():
            out[name] = float(np.mean(np.abs(b[both] - a[both])))
    return out


def prediction_distance(
    primary: Predictions, candidate: Predictions, reference: FeatureBaseline | None
) -> tuple[MethodResult, ...]:
    if isinstance(reference, CategoricalFeatureBaseline) or (
        reference is None and any(x is not None for x in (*primary.label, *candidate.label))
    ):
        return label_distance(primary.label, candidate.label)
    numeric = reference if isinstance(reference, NumericFeatureBaseline) else None
    return value_distance(primary.value, candidate.value, numeric)


def label_distance(
    primary: Sequence[str | None], candidate: Sequence[str | None]
) -> tuple[MethodResult, ...]:
    ours = Counter(label for label in _canonical(primary) if label is not None)
    theirs = Counter(label for label in _canonical(candidate) if label is not None)
    if not ours or not theirs:
        return ()
    classes = sorted(ours.keys() | theirs.keys())
    reference = shares([ours[c] for c in classes])
    window = shares([theirs[c] for c in classes])
    results = [_binned(name, reference, window) for name in BINNED_METHODS]
    test = chi2_test(ours, theirs)
    if test is not None:
        results.append(MethodResult("chi2", test.statistic, pvalue=test.pvalue))
    return tuple(results)


def value_distance(
    primary: FloatArray, candidate: FloatArray, reference: NumericFeatureBaseline | None
) -> tuple[MethodResult, ...]:
    ours, theirs = finite(primary), finite(candidate)
    if not len(ours) or not len(theirs):
        return ()
    if reference is not None:
        edges = np.asarray(reference.edges, dtype=np.float64)
        scale = wasserstein_scale(reference.std, reference.mean)
    else:
        inner = np.unique(np.quantile(ours, DECILES))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        scale = wasserstein_scale(float(np.std(ours)), float(np.mean(ours)))
    reference_shares, window_shares = (shares(_bin_counts(v, edges)) for v in (ours, theirs))
    results = [_binned(name, reference_shares, window_shares) for name in BINNED_METHODS]
    test = ks_test(theirs, ours)
    if test is not None:
        results.append(MethodResult("ks", test.statistic, pvalue=test.pvalue))
    results.append(MethodResult("wasserstein", wasserstein(theirs, ours, scale)))
    return tuple(results)


def labelled(side: Predictions) -> Labelled:
    """The side's rows whose ground truth has arrived."""
    rows = [i for i, truth in enumerate(side.truth) if truth is not None]
    return Labelled(
        truth=tuple(side.truth[i] for i in rows),  # type: ignore[misc]
        predicted_value=side.value[rows],
        predicted_label=tuple(side.label[i] for i in rows),
        score=side.score[rows],
    )


def _canonical(labels: Sequence[str | None]) -> list[str | None]:
    # A window holds few distinct labels: each is spelled canonically once.
    spelled = {label: canonical_label(label) for label in set(labels)}
    return [spelled[label] for label in labels]


def _bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    # [edges[i], edges[i+1]) as the baseline's bins (windows.summary.summarize_numeric).
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(which, minlength=len(edges) - 1).astype(np.float64)


def _binned(name: str, reference: FloatArray, window: FloatArray) -> MethodResult:
    return MethodResult(name, float(BINNED_METHODS[name](reference, window)))
