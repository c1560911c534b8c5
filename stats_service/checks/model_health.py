"""What a window's result says about the model beyond drift: performance estimated
without labels, label coverage and delay, per-segment results and the root cause of a drift.

Added to the result the drift and quality checks made (`service.runner`); `evaluate`
is that same evaluation, applied here to each segment of the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from stats_service.checks.estimation.estimate import Estimator, estimate
from stats_service.checks.multivariate import PcaModel, rank_root_cause
from stats_service.checks.results import LabelCoverage, LabelDelay, WindowResult
from stats_service.checks.segments import evaluate_segments, worst_segments
from stats_service.windows.summary import FloatArray, WindowSummary

# The quantiles `label_delay` reports (and mlmon_label_delay_seconds exports).
DELAY_QUANTILES = (0.5, 0.9, 0.99)


def add_model_health(
    result: WindowResult,
    summary: WindowSummary,
    estimator: Estimator | str,
    pca: PcaModel | None,
    evaluate: Callable[[WindowSummary], WindowResult],
) -> WindowResult:
    task = result.performance.task if result.performance is not None else ""
    segments = evaluate_segments(summary, evaluate)
    flagged = bool(result.dataset_drift) or (
        result.multivariate is not None and result.multivariate.detected
    )
    return dataclasses.replace(
        result,
        estimated_performance=estimate(estimator, summary, task),
        label_coverage=LabelCoverage(
            labelled=summary.labelled.count,
            rows=summary.rows,
            ratio=summary.labelled.count / summary.rows if summary.rows else 0.0,
        ),
        label_delay=label_delay(summary.labelled.delay),
        segments=segments,
        worst_segments=worst_segments(segments),
        root_cause=rank_root_cause(result.features, result.multivariate, pca) if flagged else (),
    )


def label_delay(delays: FloatArray) -> LabelDelay:
    """Quantiles (numpy's default, linear) of the known delays; unknown ones (NaN) left out."""
    known = delays[np.isfinite(delays)]
    if not len(known):
        return LabelDelay(count=0)
    p50, p90, p99 = (float(q) for q in np.quantile(known, DELAY_QUANTILES))
    return LabelDelay(
        count=len(known),
        p50=p50,
        p90=p90,
        p99=p99,
        max=float(known.max()),
        mean=float(known.mean()),
    )
