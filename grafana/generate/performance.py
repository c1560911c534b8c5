"""Performance: model quality over rows whose ground truth has arrived."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge
from grafana_foundation_sdk.models import dashboard as dashboard_models

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    IN_WINDOW,
    METRIC,
    PER_WINDOW,
    SHARE,
    TABLE_FORMAT,
    Grouping,
    Style,
    max_by,
    prom,
    query_variable,
    stats_window_variables,
)
from grafana.generate.panels import band, bars, stat_panel, table_panel, timeseries

PER_METRIC = Grouping(
    "model, window, metric", f"{IN_WINDOW}, {METRIC}", "{{model}} {{metric}} ({{window}})"
)
PERFORMANCE = "mlmon_model_performance"
ESTIMATED = "mlmon_estimated_performance"
LABELLED = PER_WINDOW.expr("mlmon_model_performance_samples")
# The estimated metrics (the `estimate` variable): there are estimates before any label.
ESTIMATE = 'metric=~"$estimate"'
ONE_ESTIMATE = Grouping("model, window, metric", f"{IN_WINDOW}, {ESTIMATE}", "")
PER_SEGMENT = Grouping(
    "model, window, feature, segment", IN_WINDOW, "{{feature}}={{segment}} ({{window}})"
)
SEGMENT_METRIC = "model, window, feature, segment, metric"
ESTIMATED_SEGMENT, REALISED_SEGMENT = (
    "mlmon_segment_estimated_performance",
    "mlmon_segment_performance",
)


def build() -> Generated:
    board = Board(
        "mlmon-performance",
        "mlmon / Performance",
        "Model quality computed by the stats service over the rows of each window whose "
        "ground truth was posted to the sidecar's /feedback.",
        [
            *stats_window_variables("mlmon_window_samples"),
            query_variable(
                "metric",
                "Metric",
                "Quality metrics: accuracy, precision, recall, f1, roc_auc, log_loss for "
                "classifiers; mae, rmse for regression.",
                f"label_values(mlmon_model_performance{{{IN_WINDOW}}}, metric)",
            ),
            query_variable(
                "estimate",
                "Estimated metric",
                "Metrics estimated without labels (CBPE for classifiers, direct loss for "
                "regressions), shown next to their realised value.",
                f"label_values({ESTIMATED}{{{IN_WINDOW}}}, metric)",
            ),
        ],
    )
    _quality_row(board)
    _estimated_row(board)
    _ground_truth_row(board)
    _segments_row(board)
    return board.generate()


def _quality_row(board: Board) -> None:
    # Each panel narrows the selected metrics to those it can scale alike.
    board.row("Quality")
    board.add(
        timeseries(
            "Classification quality",
            "Accuracy, precision, recall, F1 and ROC AUC (higher is better), per window. "
            "Undefined metrics (e.g. ROC AUC with one class among the labels) are absent.",
            [PER_METRIC.query(PERFORMANCE, 'metric=~"accuracy|precision|recall|f1|roc_auc"')],
            SHARE,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Errors (lower is better)",
            "Log loss for classifiers; MAE and RMSE, in the target's units, for regression.",
            [PER_METRIC.query(PERFORMANCE, 'metric=~"log_loss|mae|rmse"')],
            Style(unit="short", min=0),
        ),
        may_be_empty=True,
    )
    board.add(
        stat_panel(
            "Latest values",
            "The latest value of each selected metric and window.",
            [PER_METRIC.query(PERFORMANCE)],
            Style(unit="short", decimals=3),
        ),
        24,
        5,
        may_be_empty=True,
    )


def _estimated_row(board: Board) -> None:
    # One row per window and one panel per metric: the band pairs exactly one lower and
    # one upper series (see `band`).
    board.row("Estimated vs realised ($window)", repeat="window")
    board.add(
        band(
            "Estimated vs realised $estimate",
            "The metric estimated without labels (dashed) inside the band the reference's "
            "sampling error allows at this window's size, and the metric realised over the "
            "labelled rows (solid), per window. Realised values replace the estimate as "
            "labels arrive; an estimate outside its band alerts. Select one model.",
            ONE_ESTIMATE.expr(ESTIMATED),
            (ONE_ESTIMATE.expr(f"{ESTIMATED}_lower"), ONE_ESTIMATE.expr(f"{ESTIMATED}_upper")),
            ONE_ESTIMATE.expr(PERFORMANCE),
            Style(unit="short", decimals=3),
        )
        .repeat("estimate")
        .repeat_direction("h")
        .max_per_row(3),
        may_be_empty=True,
    )


def _ground_truth_row(board: Board) -> None:
    board.row("Ground truth")
    board.add(
        timeseries(
            "Labelled samples",
            "Rows of the window with ground truth, which the metrics above are computed on. "
            "Few labelled rows make the metrics noisy.",
            [prom(LABELLED, PER_WINDOW.legend)],
            COUNT,
        ),
        6,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Label coverage",
            "Share of the window's rows whose ground truth has arrived.",
            [PER_WINDOW.query("mlmon_label_coverage_ratio")],
            SHARE,
        ),
        6,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Label delay",
            "Seconds from a row to the arrival of its ground truth, over the window's "
            "labelled rows: p50, p90 and p99. Realised metrics lag the traffic by this much.",
            [
                prom(
                    max_by("model, window, quantile", "mlmon_label_delay_seconds", IN_WINDOW),
                    "q{{quantile}} {{model}} ({{window}})",
                )
            ],
            Style(unit="s", min=0),
        ),
        6,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Window samples",
            "All rows in each window, labelled or not.",
            [PER_WINDOW.query("mlmon_window_samples")],
            COUNT,
        ),
        6,
    )


def _segments_row(board: Board) -> None:
    board.row("Segments")
    board.add(
        table_panel(
            "Segments",
            "Each `segment: true` feature's largest values in the window (at most 20 per "
            "feature, the rest pooled as __other__): their rows and the share of features "
            "drifted within each.",
            [
                prom(PER_SEGMENT.expr("mlmon_segment_rows"), instant=True, fmt=TABLE_FORMAT),
                prom(PER_SEGMENT.expr("mlmon_segment_drift_share"), instant=True, fmt=TABLE_FORMAT),
            ],
            COUNT,
            merge=True,
            organize={
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "Rows", "Value #B": "Drifted share"},
            },
        ).override_by_name(
            "Drifted share",
            [dashboard_models.DynamicConfigValue(id_val="unit", value="percentunit")],
        ),
        8,
        10,
        may_be_empty=True,
    )
    board.add(
        _segment_bars(
            "Segment performance, estimated",
            "Each segment's estimated metric, lowest first: the worst segment, which the "
            "estimated performance alert names, is on top (at the bottom for mae and rmse). "
            "__other__ pools the small segments and is never named.",
            "mlmon_segment_estimated_performance",
            ESTIMATE,
        ),
        8,
        10,
        may_be_empty=True,
    )
    board.add(
        _segment_bars(
            "Segment performance, realised",
            "Each segment's metric over its labelled rows, lowest first (the worst on top, "
            "at the bottom for log_loss, mae and rmse), as the performance alert names it.",
            "mlmon_segment_performance",
            METRIC,
        ),
        8,
        10,
        may_be_empty=True,
    )


def _segment_bars(title: str, description: str, metric: str, chosen: str) -> bargauge.Panel:
    # sort(): the bars in the order of their values.
    expr = f"sort({max_by(SEGMENT_METRIC, metric, f'{IN_WINDOW}, {chosen}')})"
    return bars(
        title,
        description,
        [prom(expr, "{{metric}} {{feature}}={{segment}} ({{window}})", instant=True)],
        Style(unit="short", decimals=3),
    )
