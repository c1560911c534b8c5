"""Performance: model quality over rows whose ground truth has arrived."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    IN_WINDOW,
    METRIC,
    Style,
    prom,
    query_variable,
    stats_window_variables,
)
from grafana.generate.panels import stat_panel, timeseries

LEGEND = "{{model}} {{metric}} ({{window}})"
WINDOW_LEGEND = "{{model}} ({{window}})"
LABELLED = f"max by (model, window) (mlmon_model_performance_samples{{{IN_WINDOW}}})"


def _performance(names: str | None = None) -> str:
    """The selected metrics; `names` narrows them further (a second matcher on `metric`)."""
    narrow = f', metric=~"{names}"' if names else ""
    return (
        f"max by (model, window, metric) (mlmon_model_performance{{{IN_WINDOW}, {METRIC}{narrow}}})"
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
        ],
    )
    board.row("Quality")
    board.add(
        timeseries(
            "Classification quality",
            "Accuracy, precision, recall, F1 and ROC AUC (higher is better), per window. "
            "Undefined metrics (e.g. ROC AUC with one class among the labels) are absent.",
            [prom(_performance("accuracy|precision|recall|f1|roc_auc"), LEGEND)],
            Style(unit="percentunit", min=0, max=1),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Errors (lower is better)",
            "Log loss for classifiers; MAE and RMSE, in the target's units, for regression.",
            [prom(_performance("log_loss|mae|rmse"), LEGEND)],
            Style(unit="short", min=0),
        ),
        may_be_empty=True,
    )
    board.add(
        stat_panel(
            "Latest values",
            "The latest value of each selected metric and window.",
            [prom(_performance(), LEGEND)],
            Style(unit="short", decimals=3),
        ),
        24,
        5,
        may_be_empty=True,
    )

    board.row("Ground truth")
    board.add(
        timeseries(
            "Labelled samples",
            "Rows of the window with ground truth, which the metrics above are computed on. "
            "Few labelled rows make the metrics noisy.",
            [prom(LABELLED, WINDOW_LEGEND)],
            Style(unit="short", min=0, decimals=0),
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Label coverage",
            "Share of the window's rows whose ground truth has arrived.",
            [
                prom(
                    f"{LABELLED} / max by (model, window) (mlmon_window_samples{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            Style(unit="percentunit", min=0, max=1),
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Window samples",
            "All rows in each window, labelled or not.",
            [
                prom(
                    f"max by (model, window) (mlmon_window_samples{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            Style(unit="short", min=0, decimals=0),
        ),
        8,
    )
    return board.generate()
