"""Results for people: JSON (`/api/v1/report`, `report --json`) and a terminal table."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stats_service.checks.results import FeatureDrift, PerformanceResult, WindowResult
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
    }


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
    return "\n".join(lines)


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
