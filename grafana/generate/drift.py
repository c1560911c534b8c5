"""Drift: each window of the input log against the training baseline (stats service)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import statetimeline
from grafana_foundation_sdk.builders import timeseries as timeseries_builders

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    IN_WINDOW,
    METHOD,
    PER_FEATURE,
    PER_WINDOW,
    Grouping,
    Style,
    prom,
    query_variable,
    stats_window_variables,
    value_mapping,
)
from grafana.generate.panels import bars, states, timeseries, versus

PER_FEATURE_METHOD = Grouping(
    "model, window, feature, method",
    f"{PER_FEATURE.matchers}, {METHOD}",
    "{{model}}/{{feature}} {{method}} ({{window}})",
)
PER_METHOD = Grouping(
    "model, window, method", f"{IN_WINDOW}, {METHOD}", "{{model}} {{method}} ({{window}})"
)
DRIFT_STATES = Style(
    unit="short", mappings=(value_mapping({0: ("no drift", "green"), 1: ("drift", "red")}),)
)
WINDOW_STATES = Style(
    unit="short",
    mappings=(
        value_mapping({0: ("ok", "green"), 1: ("too few rows", "orange"), 2: ("error", "red")}),
    ),
)
INSUFFICIENT = PER_WINDOW.expr("mlmon_window_status", 'status="insufficient"')
ERROR = PER_WINDOW.expr("mlmon_window_status", 'status="error"')
# Both statuses in one series, so that each window is one band of WINDOW_STATES.
WINDOW_STATUS = f"{INSUFFICIENT} + 2 * {ERROR}"
# Score / threshold: 1 is the detection line, whatever the feature and the method.
RELATIVE = (
    f"{PER_FEATURE_METHOD.expr('mlmon_feature_drift_score')} / "
    f"{PER_FEATURE_METHOD.expr('mlmon_feature_drift_threshold')}"
)
RELATIVE_STEPS = (("green", None), ("orange", 0.8), ("red", 1.0))


def build() -> Generated:
    board = Board(
        "mlmon-drift",
        "mlmon / Drift",
        "Drift of each feature, of the predictions and of the inputs as a whole, per "
        "window, against the baseline built from the training data.",
        _variables(),
    )
    _dataset_row(board)
    _features_row(board)
    _whole_row(board)
    return board.generate()


def _variables() -> list[dashboard_builders.QueryVariable]:
    return [
        *stats_window_variables("mlmon_window_samples"),
        query_variable(
            "feature",
            "Feature",
            "Features with a drift score.",
            f"label_values(mlmon_feature_drift_score{{{IN_WINDOW}}}, feature)",
        ),
        query_variable(
            "method",
            "Method",
            "Drift statistics (psi, jensenshannon, hellinger, wasserstein, ks, chi2).",
            f"label_values(mlmon_feature_drift_score{{{IN_WINDOW}}}, method)",
        ),
    ]


def _detected(title: str, description: str, grouping: Grouping, metric: str) -> statetimeline.Panel:
    return states(title, description, [grouping.query(metric)], DRIFT_STATES)


def _against_threshold(
    title: str, description: str, grouping: Grouping, score: str, threshold: str
) -> timeseries_builders.Panel:
    return versus(
        title,
        description,
        grouping.query(score),
        (grouping.expr(threshold), grouping.legend),
        Style(unit="short", min=0),
    )


def _dataset_row(board: Board) -> None:
    board.row("Dataset")
    board.add(
        timeseries(
            "Drifted-feature share",
            "Share of features whose drift was detected in the window. The dataset counts as "
            "drifted from drift.dataset_share (default 50%, the red line).",
            [PER_WINDOW.query("mlmon_dataset_drift_share")],
            Style(unit="percentunit", min=0, max=1, steps=(("green", None), ("red", 0.5))),
            threshold_lines=True,
        )
    )
    board.add(
        _detected(
            "Dataset drift",
            "Whether the drifted-feature share reached drift.dataset_share, per window.",
            PER_WINDOW,
            "mlmon_dataset_drift_detected",
        )
    )
    board.add(
        timeseries(
            "Window samples",
            "Rows in each window. Below min_samples (default 100) a window is not "
            "evaluated and its drift series disappear.",
            [PER_WINDOW.query("mlmon_window_samples")],
            COUNT,
        )
    )
    board.add(
        states(
            "Window status",
            "ok; too few rows (below min_samples); or error (the store could not be read, "
            "see the pipeline dashboard).",
            [prom(WINDOW_STATUS, PER_WINDOW.legend)],
            WINDOW_STATES,
        )
    )


def _features_row(board: Board) -> None:
    board.row("Features")
    board.add(
        _against_threshold(
            "Feature drift score vs threshold",
            "Drift statistic of each feature against the baseline (solid), and its threshold "
            'calibrated at the window\'s size (dashed, named "threshold ..."). The p-value '
            "tests (ks, chi2) have no threshold: see the p-values panel.",
            PER_FEATURE_METHOD,
            "mlmon_feature_drift_score",
            "mlmon_feature_drift_threshold",
        ),
        24,
        10,
    )
    board.add(
        timeseries(
            "Drift score / threshold",
            "Each feature's score divided by its threshold: above 1 (red line) the method "
            "detects drift. Comparable across features and methods.",
            [prom(RELATIVE, PER_FEATURE_METHOD.legend)],
            Style(unit="short", min=0, decimals=2, steps=RELATIVE_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        bars(
            "Drift score / threshold now",
            "Latest score / threshold per feature and method; red from 1.",
            [prom(RELATIVE, PER_FEATURE_METHOD.legend, instant=True)],
            Style(unit="short", min=0, max=2, decimals=2, steps=RELATIVE_STEPS),
        )
    )
    board.add(
        _detected(
            "Feature drift detected",
            "Per feature, whether its detection method (one per feature, set in the stats "
            "service's settings) is above its threshold.",
            PER_FEATURE,
            "mlmon_feature_drift_detected",
        )
    )
    board.add(
        timeseries(
            "Two-sample test p-values",
            "Benjamini-Hochberg adjusted p-values of the ks / chi2 tests, log scale. They "
            "inform; effect sizes drive alerts. Red below 0.05.",
            [PER_FEATURE_METHOD.query("mlmon_feature_drift_pvalue")],
            Style(unit="short", steps=(("red", None), ("green", 0.05))),
            threshold_lines=True,
            log_scale=True,
        ),
        may_be_empty=True,
    )


def _whole_row(board: Board) -> None:
    board.row("Predictions and inputs as a whole")
    board.add(
        _against_threshold(
            "Prediction drift score vs threshold",
            "Drift of the prediction distribution against the baseline's (solid) and its "
            "threshold (dashed). Only for baselines built with a prediction column.",
            PER_METHOD,
            "mlmon_prediction_drift_score",
            "mlmon_prediction_drift_threshold",
        ),
        may_be_empty=True,
    )
    board.add(
        _detected(
            "Prediction drift detected",
            "Whether the prediction distribution drifted, per window.",
            PER_WINDOW,
            "mlmon_prediction_drift_detected",
        ),
        may_be_empty=True,
    )
    board.add(
        _against_threshold(
            "Multivariate reconstruction error vs threshold",
            "Mean squared PCA reconstruction error per row (standardised units) against the "
            "baseline's PCA (solid), and its calibrated threshold (dashed). Catches changes "
            "in how features move together that no single feature shows.",
            PER_WINDOW,
            "mlmon_multivariate_reconstruction_error",
            "mlmon_multivariate_reconstruction_threshold",
        ),
        may_be_empty=True,
    )
    board.add(
        _detected(
            "Multivariate drift detected",
            "Whether the reconstruction error is above its threshold, per window.",
            PER_WINDOW,
            "mlmon_multivariate_drift_detected",
        ),
        may_be_empty=True,
    )
