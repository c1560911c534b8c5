"""Results for people: JSON (`/api/v1/report`, `report --json`) and a terminal table.

The JSON of a window holds every result field: `estimated_performance` (performance
without labels), `performance.confusion`, `label_coverage`, `label_delay`, `segments`,
`worst_segments` and `root_cause` among them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stats_service.checks.comparison import CandidateComparison
from stats_service.checks.results import (
    ConfusionMatrix,
    FeatureDrift,
    PerformanceResult,
    WindowResult,
)
from stats_service.service.runner import Evaluation


def result_to_dict(result: WindowResult) -> dict[str, Any]:
    document = dataclasses.asdict(result)
    document["start"] = _iso(result.start_ts)
    document["end"] = _iso(result.end_ts)
    return document


def evaluation_to_dict(evaluation: Evaluation | None) -> dict[str, Any]:
    if evaluation is None:
        return {"evaluated_at": None, "results": []}
    return {
        "evaluated_at": _iso(evaluation.started_at),
        "duration_s": evaluation.duration_s,
        "errors": evaluation.errors,
        "results": [result_to_dict(result) for result in evaluation.results],
        "comparisons": [_comparison_to_dict(c) for c in evaluation.comparisons],
    }


def _comparison_to_dict(comparison: CandidateComparison) -> dict[str, Any]:
    document = dataclasses.asdict(comparison)
    document["start"] = _iso(comparison.start_ts)
    document["end"] = _iso(comparison.end_ts)
    return document


def evaluation_time(evaluation: Evaluation) -> str:
    return _iso(evaluation.started_at)


def drift_detected(results: Sequence[WindowResult]) -> bool:
    """Any feature, the prediction, the dataset or the multivariate check drifted."""
    return any(
        any(f.detected for f in result.features)
        or (result.prediction is not None and result.prediction.detected)
        or bool(result.dataset_drift)
        or (result.multivariate is not None and result.multivariate.detected)
        for result in results
    )


def render_table(result: WindowResult) -> str:
    lines = [f"model {result.model}, window {result.window}: {result.rows:,} rows, {result.status}"]
    if result.status != "ok":
        return "\n".join([*lines, f"  {result.message}"])
    quality = {q.feature: q for q in result.quality}
    header = (
        "feature",
        "method",
        "score",
        "threshold",
        "p-value",
        "missing",
        "unseen",
        "range",
        "",
    )
    rows: list[tuple[str, ...]] = [header]
    drifts = [*result.features, *([result.prediction] if result.prediction else [])]
    for drift in drifts:
        q = quality.get(drift.feature)
        rows.append(
            (
                drift.feature,
                drift.detection_method,
                _number(_detection(drift, "score")),
                _number(_detection(drift, "threshold")),
                _number(_pvalue(drift)),
                _percent(q.missing_ratio if q else None),
                _percent(q.unseen_ratio if q else None),
                _percent(q.out_of_range_ratio if q else None),
                "DRIFT" if drift.detected else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if result.drift_share is not None:
        verdict = "DATASET DRIFT" if result.dataset_drift else "no dataset drift"
        lines.append(f"  drifted features: {result.drift_share:.0%} ({verdict})")
    if result.multivariate is not None:
        m = result.multivariate
        flag = " DRIFT" if m.detected else ""
        lines.append(
            f"  multivariate reconstruction error {m.error:.4g} (threshold {m.threshold:.4g}){flag}"
        )
    if result.performance is not None:
        lines.append(_performance_line(result.performance))
        if result.performance.confusion is not None:
            lines += _confusion_lines(result.performance.confusion)
    lines += model_health_lines(result)
    return "\n".join(lines)


def model_health_lines(result: WindowResult) -> list[str]:
    """Estimated performance, label coverage, worst segments, root cause."""
    lines: list[str] = []
    estimated = result.estimated_performance
    if estimated is not None:
        if estimated.metrics:
            cells = ", ".join(
                f"{m.metric} {m.value:.4g} [{m.lower:.4g}, {m.upper:.4g}]"
                + (" ALERT" if m.alert else "")
                for m in estimated.metrics
            )
            lines.append(f"  estimated ({estimated.method}) on {estimated.samples:,} rows: {cells}")
        else:
            lines.append(f"  estimated performance: none ({estimated.reason})")
        lines += [f"    note: {note}" for note in estimated.notes]
    if result.label_coverage is not None and result.label_coverage.rows:
        coverage = result.label_coverage
        lines.append(
            f"  labels: {coverage.labelled:,} of {coverage.rows:,} rows ({coverage.ratio:.1%})"
            + (f", {delay}" if (delay := label_delay_text(result)) else "")
        )
    if result.worst_segments:
        worst = ", ".join(f"{metric}: {segment}" for metric, segment in result.worst_segments)
        lines.append(f"  worst segment by {worst}")
    if result.root_cause:
        cells = ", ".join(
            f"{c.feature} {_percent(c.error_share)} of the error ({c.method} {_number(c.score)})"
            for c in result.root_cause[:5]
        )
        lines.append(f"  drift explained by: {cells}")
    return lines


def label_delay_text(result: WindowResult) -> str:
    """The label delay's quantiles in seconds, for people; "" when none is known."""
    delay = result.label_delay
    if delay is None or not delay.count:
        return ""
    quantiles = (("p50", delay.p50), ("p90", delay.p90), ("p99", delay.p99), ("max", delay.max))
    return "label delay " + " ".join(f"{name} {value:.4g} s" for name, value in quantiles)


def _confusion_lines(confusion: ConfusionMatrix) -> list[str]:
    width = max(len(name) for name in (*confusion.classes, "truth"))
    cell = max(width, *(len(str(c)) for row in confusion.counts for c in row))
    header = "truth".ljust(width) + " " + " ".join(c.rjust(cell) for c in confusion.classes)
    rows = [
        name.ljust(width) + " " + " ".join(str(c).rjust(cell) for c in counts)
        for name, counts in zip(confusion.classes, confusion.counts, strict=True)
    ]
    return [
        "  confusion (rows: truth, columns: predicted)",
        *(f"    {line}" for line in [header, *rows]),
    ]


def _performance_line(performance: PerformanceResult) -> str:
    # Say which task was assumed: MAE of a classifier's probabilities, or accuracy of a
    # regression, would otherwise read as a real figure.
    if performance.task_source == "inferred":
        task = f"{performance.task}, inferred: {performance.task_reason}"
    else:
        task = f"{performance.task}, from the schema"
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in performance.metrics.items()) or "no metric"
    return f"  performance ({task}) on {performance.samples:,} labelled rows: {metrics}"


def _detection(drift: FeatureDrift, what: str) -> float | None:
    method = drift.method(drift.detection_method)
    return None if method is None else getattr(method, what)


def _pvalue(drift: FeatureDrift) -> float | None:
    for name in ("ks", "chi2"):
        method = drift.method(name)
        if method is not None:
            return method.pvalue
    return None


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
