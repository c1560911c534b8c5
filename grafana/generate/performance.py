"""Performance: model quality over rows whose ground truth has arrived."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    IN_WINDOW,
    METRIC,
    PER_WINDOW,
    SHARE,
    Grouping,
    Style,
    prom,
    query_variable,
    stats_window_variables,
)
from grafana.generate.panels import stat_panel, timeseries

PER_METRIC = Grouping(
    "model, window, metric", f"{IN_WINDOW}, {METRIC}", "{{model}} {{metric}} ({{window}})"
)
PERFORMANCE = "mlmon_model_performance"
LABELLED = PER_WINDOW.expr("mlmon_model_performance_samples")


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
        ],
    )
    _quality_row(board)
    _ground_truth_row(board)
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
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Label coverage",
            "Share of the window's rows whose ground truth has arrived.",
            [prom(f"{LABELLED} / {PER_WINDOW.expr('mlmon_window_samples')}", PER_WINDOW.legend)],
            SHARE,
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Window samples",
            "All rows in each window, labelled or not.",
            [PER_WINDOW.query("mlmon_window_samples")],
            COUNT,
        ),
        8,
    )
