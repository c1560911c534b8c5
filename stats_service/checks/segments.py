"""Per-segment results of a window, and the segment doing worst on each metric.

The window's segments (`windows.segments`: the largest K values of each `segment: true`
feature, then "__other__") are each evaluated as a window of their own, by the same
checks (drift, quality, realised and estimated performance); a segment with fewer rows
than min_samples gets its row count only. The worst segment of a metric is the one with
the lowest value (the highest for errors: mae, rmse, log_loss), estimated metrics named
"estimated_<metric>"; "__other__" is never named worst, being no segment of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stats_service.checks.estimation.bands import LOWER_IS_BETTER
from stats_service.checks.results import SegmentResult, WindowResult
from stats_service.windows.segments import OTHER
from stats_service.windows.summary import WindowSummary


def evaluate_segments(
    summary: WindowSummary, evaluate: Callable[[WindowSummary], WindowResult]
) -> tuple[SegmentResult, ...]:
    results: list[SegmentResult] = []
    for feature, parts in summary.segments.items():
        for value, part in parts.items():
            result = evaluate(part)
            missing = [q.missing_ratio for q in result.quality]
            results.append(
                SegmentResult(
                    feature=feature,
                    segment=value,
                    rows=part.rows,
                    drift_share=result.drift_share,
                    drifted=tuple(f.feature for f in result.features if f.detected),
                    missing_ratio=float(np.mean(missing)) if missing else None,
                    performance=result.performance,
                    estimated_performance=result.estimated_performance,
                )
            )
    return tuple(results)


def worst_segments(segments: tuple[SegmentResult, ...]) -> tuple[tuple[str, str], ...]:
    """(metric, "feature=value") for each metric some named segment has."""
    values: dict[str, list[tuple[float, str]]] = {}
    for segment in segments:
        if segment.segment == OTHER:
            continue
        name = f"{segment.feature}={segment.segment}"
        if segment.performance is not None:
            for metric, value in segment.performance.metrics.items():
                values.setdefault(metric, []).append((value, name))
        if segment.estimated_performance is not None:
            for estimated in segment.estimated_performance.metrics:
                key = f"estimated_{estimated.metric}"
                values.setdefault(key, []).append((estimated.value, name))
    worst: list[tuple[str, str]] = []
    for metric, candidates in sorted(values.items()):
        lower_is_better = metric.removeprefix("estimated_") in LOWER_IS_BETTER
        pick = max if lower_is_better else min
        worst.append((metric, pick(candidates, key=lambda c: (c[0], c[1]))[1]))
    return tuple(worst)
