"""Data quality: missing, unseen and out-of-range values, against the baseline's."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    FEATURE,
    IN_WINDOW,
    MODEL,
    RATE,
    RATIO_STEPS,
    ROWS_PER_SECOND,
    Style,
    prom,
    query_variable,
    stats_window_variables,
)
from grafana.generate.panels import timeseries

PER_FEATURE = f"{IN_WINDOW}, {FEATURE}"
BY_FEATURE = "model, window, feature"
LEGEND = "{{model}}/{{feature}} ({{window}})"
ISSUES = f"mlmon_feature_issues_total{{{MODEL}, {FEATURE}}}"


def _ratio(metric: str) -> str:
    return f"max by ({BY_FEATURE}) ({metric}{{{PER_FEATURE}}})"


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
    board.row("Windows against the baseline")
    board.add(
        timeseries(
            "Missing ratio vs baseline",
            "Share of the window's rows without a value for the feature (solid), and the "
            "share in the training data (dashed).",
            [
                prom(_ratio("mlmon_feature_missing_ratio"), LEGEND),
                prom(
                    f"max by (model, feature) (mlmon_baseline_missing_ratio{{{MODEL}, {FEATURE}}})",
                    "baseline {{model}}/{{feature}}",
                ),
            ],
            Style(unit="percentunit", min=0),
            dashed="^baseline .*",
        )
    )
    board.add(
        timeseries(
            "Missing ratio above baseline",
            "Window's missing ratio minus the training data's: how many more rows lack the "
            "feature than in training. Dashed lines: 1 and 5 percentage points.",
            [
                prom(
                    f"{_ratio('mlmon_feature_missing_ratio')} - on (model, feature) group_left "
                    f"max by (model, feature) (mlmon_baseline_missing_ratio{{{MODEL}, {FEATURE}}})",
                    LEGEND,
                )
            ],
            Style(unit="percentunit", steps=RATIO_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        timeseries(
            "Unseen-category ratio",
            "Share of a categorical feature's values outside the training vocabulary (0 in "
            "the baseline by construction). Dashed lines: 1% and 5%.",
            [prom(_ratio("mlmon_feature_unseen_ratio"), LEGEND)],
            Style(unit="percentunit", min=0, steps=RATIO_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        timeseries(
            "Out-of-range ratio",
            "Share of a numeric feature's values outside the training [min, max]. Dashed "
            "lines: 1% and 5%.",
            [prom(_ratio("mlmon_feature_out_of_range_ratio"), LEGEND)],
            Style(unit="percentunit", min=0, steps=RATIO_STEPS),
            threshold_lines=True,
        )
    )

    board.row("Live, from the sidecar")
    board.add(
        timeseries(
            "Feature issues (share of rows)",
            "Share of input rows with an issue, by feature and kind (missing, missing_field, "
            "type_mismatch, out_of_range, unseen_category, unexpected_field), as the "
            "sidecar's worker finds them. Dashed lines: 1% and 5%.",
            [
                prom(
                    f"sum by (model, feature, kind) (rate({ISSUES}[{RATE}])) / on (model) "
                    "group_left sum by (model) "
                    f"(rate(mlmon_batch_size_sum{{{MODEL}}}[{RATE}]))",
                    "{{model}}/{{feature}} {{kind}}",
                )
            ],
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
            [
                prom(
                    f"sum by (model, feature, kind) (rate({ISSUES}[{RATE}]))",
                    "{{model}}/{{feature}} {{kind}}",
                )
            ],
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
                    "sum by (protocol, part, reason) "
                    f"(rate(mlmon_payload_parse_errors_total[{RATE}]))",
                    "{{protocol}} {{part}} {{reason}}",
                )
            ],
            Style(unit="reqps", min=0, no_value="0", steps=(("green", None), ("red", 1e-9))),
        ),
        8,
        may_be_empty=True,
    )
    return board.generate()
