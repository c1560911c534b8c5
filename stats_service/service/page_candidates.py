"""The stats page's "Candidates" section: each shadow or canary model next to the primary.

One table row per model, window and candidate: how many answers were compared, how often
a shadow predicted the primary's label, the distance between the two prediction
distributions, and each side's performance on its labelled answers. A shadow agreeing
on fewer than AGREEMENT_WARNING of its answers is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from stats_service.checks.comparison import CandidateComparison
from stats_service.checks.results import PerformanceResult

AGREEMENT_WARNING = 0.9
DISTANCE_METHOD = "jensenshannon"
HEADER = (
    "model",
    "window",
    "candidate",
    "role",
    "compared",
    "agreement",
    "mean |diff|",
    f"distance ({DISTANCE_METHOD})",
    "primary",
    "candidate",
)


def render_comparisons(comparisons: Sequence[CandidateComparison]) -> str:
    if not comparisons:
        return ""
    head = "".join(f"<th>{escape(title)}</th>" for title in HEADER)
    rows = "".join(_row(comparison) for comparison in comparisons)
    return (
        "<h2>Candidates against the primary</h2>"
        "<p class='meta'>Shadows are compared on the same requests; canaries on their own "
        "share of traffic. Performance over answers whose ground truth arrived.</p>"
        f"<table class='candidates'><tr>{head}</tr>{rows}</table>"
    )


def _row(comparison: CandidateComparison) -> str:
    identity = (comparison.model, comparison.window, comparison.candidate, comparison.role)
    cells = [escape(text) for text in identity]
    compared = f"{comparison.primary_samples:,} / {comparison.candidate_samples:,}"
    if comparison.status != "ok":
        note = f"{escape(comparison.status)}: {escape(comparison.message)}"
        cells += [compared, f"<span class='meta'>{note}</span>", "", "", "", ""]
    else:
        distance = next((m for m in comparison.distance if m.method == DISTANCE_METHOD), None)
        differences = ", ".join(f"{k} {v:.3g}" for k, v in comparison.mean_abs_diff.items())
        cells += [
            compared,
            _agreement(comparison.agreement),
            differences or "-",
            _number(distance.score if distance else None),
            _performance(comparison.primary_performance),
            _performance(comparison.candidate_performance),
        ]
    data = f"data-candidate='{escape(comparison.candidate)}' data-role='{escape(comparison.role)}'"
    return f"<tr {data}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _agreement(agreement: float | None) -> str:
    if agreement is None:
        return "-"
    css = "flag" if agreement < AGREEMENT_WARNING else "ok"
    return f"<span class='{css}'>{agreement:.1%}</span>"


def _performance(performance: PerformanceResult | None) -> str:
    if performance is None or not performance.metrics:
        return "-"
    metrics = ", ".join(f"{k} {v:.3g}" for k, v in performance.metrics.items())
    return f"{escape(metrics)} <span class='meta'>({performance.samples:,} labelled)</span>"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
