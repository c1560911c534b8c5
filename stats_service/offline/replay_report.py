"""A replay's verdict against the thresholds given on the command line, and its text form."""

from __future__ import annotations

import dataclasses

from stats_service.checks.results import PerformanceResult
from stats_service.offline.replay import ReplayResult


def gate(
    result: ReplayResult, min_agreement: float | None, max_distance: float | None
) -> ReplayResult:
    """`result` with the thresholds it misses; an undefined figure misses its threshold."""
    violations = []
    if min_agreement is not None and not (
        result.agreement is not None and result.agreement >= min_agreement
    ):
        violations.append(f"agreement {_figure(result.agreement)} below {min_agreement:.4g}")
    score = result.distance.score
    if max_distance is not None and not (score is not None and score <= max_distance):
        violations.append(
            f"{result.distance.method} distance {_figure(score)} above {max_distance:.4g}"
        )
    return dataclasses.replace(result, violations=tuple(violations))


def render(result: ReplayResult) -> str:
    lines = [
        f"replayed {result.answered:,} of {result.rows:,} rows ({result.kind})"
        + (f", {result.failed:,} failed: {result.first_error}" if result.failed else ""),
        f"  agreement {_figure(result.agreement)}",
        f"  {result.distance.method} distance {_figure(result.distance.score)}",
        f"  logged model:    {_performance(result.logged_performance)}",
        f"  candidate model: {_performance(result.candidate_performance)}",
    ]
    if result.differences:
        lines.append("  rows that differ most (request_id:row logged -> candidate):")
        lines += [
            f"    {d.request_id}:{d.row}  {d.logged} -> {d.candidate}" for d in result.differences
        ]
    lines += [f"  FAIL {violation}" for violation in result.violations]
    return "\n".join(lines)


def _performance(performance: PerformanceResult | None) -> str:
    if performance is None:
        return "no labelled rows"
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in performance.metrics.items()) or "no metric"
    return f"{metrics} ({performance.samples:,} labelled rows)"


def _figure(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"
