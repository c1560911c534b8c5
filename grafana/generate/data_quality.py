"""Data quality: missing, unseen and out-of-range values, against the baseline's."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries as timeseries_builders

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    FEATURE,
    IN_WINDOW,
    MODEL,
    PER_FEATURE,
    RATIO_STEPS,
    ROWS_BY_MODEL,
    ROWS_PER_SECOND,
    Grouping,
    Style,
    prom,
    query_variable,
    rare_failures,
    stats_window_variables,
    sum_rate,
)
from grafana.generate.panels import timeseries, versus

# The training data's figures: per model and feature, no window.
BASELINE = Grouping("model, feature", f"{MODEL}, {FEATURE}", "{{model}}/{{feature}}")
MISSING = PER_FEATURE.expr("mlmon_feature_missing_ratio")
BASELINE_MISSING = BASELINE.expr("mlmon_baseline_missing_ratio")
ISSUE_RATE = sum_rate("model, feature, kind", "mlmon_feature_issues_total", f"{MODEL}, {FEATURE}")
ISSUE_LEGEND = "{{model}}/{{feature}} {{kind}}"


def build() -> Generated:
    board = Board(
        "mlmon-data-quality",
        "mlmon / Data quality",
        "Missing, unseen-category and out-of-range values per feature: per window from the "
        "stats service against the baseline, and live from the sidecar.",
        [
            *stats_window_variables("mlmon_feature_missing_ratio"),
            query_variable(
                "feature",
                "Feature",
                "Features of the model's schema.",
                f"label_values(mlmon_feature_missing_ratio{{{IN_WINDOW}}}, feature)",
            ),
        ],
    )
    _windows_row(board)
    _live_row(board)
    return board.generate()


def _ratio(title: str, description: str, metric: str) -> timeseries_builders.Panel:
    """A share of the window's values, with 1% and 5% drawn as dashed lines."""
    return timeseries(
        title,
        description,
        [PER_FEATURE.query(metric)],
        Style(unit="percentunit", min=0, steps=RATIO_STEPS),
        threshold_lines=True,
    )


def _windows_row(board: Board) -> None:
    board.row("Windows against the baseline")
    board.add(
        versus(
            "Missing ratio vs baseline",
            "Share of the window's rows without a value for the feature (solid), and the "
            "share in the training data (dashed).",
            prom(MISSING, PER_FEATURE.legend),
            (BASELINE_MISSING, BASELINE.legend),
            Style(unit="percentunit", min=0),
            kind="baseline",
        )
    )
    board.add(
        timeseries(
            "Missing ratio above baseline",
            "Window's missing ratio minus the training data's: how many more rows lack the "
            "feature than in training. Dashed lines: 1 and 5 percentage points.",
            [
                prom(
                    f"{MISSING} - on (model, feature) group_left {BASELINE_MISSING}",
                    PER_FEATURE.legend,
                )
            ],
            Style(unit="percentunit", steps=RATIO_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        _ratio(
            "Unseen-category ratio",
            "Share of a categorical feature's values outside the training vocabulary (0 in "
            "the baseline by construction). Dashed lines: 1% and 5%.",
            "mlmon_feature_unseen_ratio",
        )
    )
    board.add(
        _ratio(
            "Out-of-range ratio",
            "Share of a numeric feature's values outside the training [min, max]. Dashed "
            "lines: 1% and 5%.",
            "mlmon_feature_out_of_range_ratio",
        )
    )


def _live_row(board: Board) -> None:
    """Every panel may be empty: the sidecar's counters only exist once an issue happened."""
    board.row("Live, from the sidecar")
    board.add(
        timeseries(
            "Feature issues (share of rows)",
            "Share of input rows with an issue, by feature and kind (missing, missing_field, "
            "type_mismatch, out_of_range, unseen_category, unexpected_field), as the "
            "sidecar's worker finds them. Dashed lines: 1% and 5%.",
            [prom(f"{ISSUE_RATE} / on (model) group_left {ROWS_BY_MODEL}", ISSUE_LEGEND)],
            Style(unit="percentunit", min=0, steps=RATIO_STEPS, no_value="0"),
            threshold_lines=True,
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Feature issues rate",
            "Input rows per second with an issue, by feature and kind.",
            [prom(ISSUE_RATE, ISSUE_LEGEND)],
            Style(unit=ROWS_PER_SECOND, min=0, no_value="0"),
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Payload parse errors",
            "Bodies forwarded to the model but not understood by the protocol adapter, per "
            "second, by protocol, part (request or response) and reason. These rows are "
            "missing from the input log and every statistic. All models.",
            [
                prom(
                    sum_rate("protocol, part, reason", "mlmon_payload_parse_errors_total"),
                    "{{protocol}} {{part}} {{reason}}",
                )
            ],
            rare_failures("reqps"),
        ),
        8,
        may_be_empty=True,
    )
