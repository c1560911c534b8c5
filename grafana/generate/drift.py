"""Drift: each window of the input log against the training baseline (stats service)."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    FEATURE,
    IN_WINDOW,
    METHOD,
    Style,
    prom,
    query_variable,
    stats_window_variables,
    value_mapping,
)
from grafana.generate.panels import bars, states, timeseries

PER_FEATURE = f"{IN_WINDOW}, {FEATURE}, {METHOD}"
BY_FEATURE = "model, window, feature, method"
FEATURE_LEGEND = "{{model}}/{{feature}} {{method}} ({{window}})"
WINDOW_LEGEND = "{{model}} ({{window}})"
DRIFT_STATES = Style(
    unit="short", mappings=(value_mapping({0: ("no drift", "green"), 1: ("drift", "red")}),)
)
# Score / threshold: 1 is the detection line.
RELATIVE_STEPS = (("green", None), ("orange", 0.8), ("red", 1.0))


def build() -> Generated:
    board = Board(
        "mlmon-drift",
        "mlmon / Drift",
        "Drift of each feature, of the predictions and of the inputs as a whole, per "
        "window, against the baseline built from the training data.",
        [
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
        ],
    )
    board.row("Dataset")
    board.add(
        timeseries(
            "Drifted-feature share",
            "Share of features whose drift was detected in the window. The dataset counts as "
            "drifted from drift.dataset_share (default 50%, the red line).",
            [
                prom(
                    f"max by (model, window) (mlmon_dataset_drift_share{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            Style(unit="percentunit", min=0, max=1, steps=(("green", None), ("red", 0.5))),
            threshold_lines=True,
        )
    )
    board.add(
        states(
            "Dataset drift",
            "Whether the drifted-feature share reached drift.dataset_share, per window.",
            [
                prom(
                    f"max by (model, window) (mlmon_dataset_drift_detected{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            DRIFT_STATES,
        )
    )
    board.add(
        timeseries(
            "Window samples",
            "Rows in each window. Below min_samples (default 100) a window is not "
            "evaluated and its drift series disappear.",
            [
                prom(
                    f"max by (model, window) (mlmon_window_samples{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            Style(unit="short", min=0, decimals=0),
        )
    )
    board.add(
        states(
            "Window status",
            "ok; too few rows (below min_samples); or error (the store could not be read, "
            "see the pipeline dashboard).",
            [
                prom(
                    "max by (model, window) "
                    f'(mlmon_window_status{{{IN_WINDOW}, status="insufficient"}}) + 2 * '
                    "max by (model, window) "
                    f'(mlmon_window_status{{{IN_WINDOW}, status="error"}})',
                    WINDOW_LEGEND,
                )
            ],
            Style(
                unit="short",
                mappings=(
                    value_mapping(
                        {0: ("ok", "green"), 1: ("too few rows", "orange"), 2: ("error", "red")}
                    ),
                ),
            ),
        )
    )

    board.row("Features")
    board.add(
        timeseries(
            "Feature drift score vs threshold",
            "Drift statistic of each feature against the baseline (solid), and its threshold "
            'calibrated at the window\'s size (dashed, named "threshold ..."). The p-value '
            "tests (ks, chi2) have no threshold: see the p-values panel.",
            [
                prom(
                    f"max by ({BY_FEATURE}) (mlmon_feature_drift_score{{{PER_FEATURE}}})",
                    FEATURE_LEGEND,
                ),
                prom(
                    f"max by ({BY_FEATURE}) (mlmon_feature_drift_threshold{{{PER_FEATURE}}})",
                    "threshold " + FEATURE_LEGEND,
                ),
            ],
            Style(unit="short", min=0),
            dashed="^threshold .*",
        ),
        24,
        10,
    )
    relative = (
        f"max by ({BY_FEATURE}) (mlmon_feature_drift_score{{{PER_FEATURE}}}) / "
        f"max by ({BY_FEATURE}) (mlmon_feature_drift_threshold{{{PER_FEATURE}}})"
    )
    board.add(
        timeseries(
            "Drift score / threshold",
            "Each feature's score divided by its threshold: above 1 (red line) the method "
            "detects drift. Comparable across features and methods.",
            [prom(relative, FEATURE_LEGEND)],
            Style(unit="short", min=0, decimals=2, steps=RELATIVE_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        bars(
            "Drift score / threshold now",
            "Latest score / threshold per feature and method; red from 1.",
            [prom(relative, FEATURE_LEGEND, instant=True)],
            Style(unit="short", min=0, max=2, decimals=2, steps=RELATIVE_STEPS),
        )
    )
    board.add(
        states(
            "Feature drift detected",
            "Per feature, whether its detection method (one per feature, set in the stats "
            "service's settings) is above its threshold.",
            [
                prom(
                    "max by (model, window, feature) "
                    f"(mlmon_feature_drift_detected{{{IN_WINDOW}, {FEATURE}}})",
                    "{{model}}/{{feature}} ({{window}})",
                )
            ],
            DRIFT_STATES,
        )
    )
    board.add(
        timeseries(
            "Two-sample test p-values",
            "Benjamini-Hochberg adjusted p-values of the ks / chi2 tests, log scale. They "
            "inform; effect sizes drive alerts. Red below 0.05.",
            [
                prom(
                    f"max by ({BY_FEATURE}) (mlmon_feature_drift_pvalue{{{PER_FEATURE}}})",
                    FEATURE_LEGEND,
                )
            ],
            Style(unit="short", steps=(("red", None), ("green", 0.05))),
            threshold_lines=True,
            log_scale=True,
        ),
        may_be_empty=True,
    )

    board.row("Predictions and inputs as a whole")
    board.add(
        timeseries(
            "Prediction drift score vs threshold",
            "Drift of the prediction distribution against the baseline's (solid) and its "
            "threshold (dashed). Only for baselines built with a prediction column.",
            [
                prom(
                    "max by (model, window, method) "
                    f"(mlmon_prediction_drift_score{{{IN_WINDOW}, {METHOD}}})",
                    "{{model}} {{method}} ({{window}})",
                ),
                prom(
                    "max by (model, window, method) "
                    f"(mlmon_prediction_drift_threshold{{{IN_WINDOW}, {METHOD}}})",
                    "threshold {{model}} {{method}} ({{window}})",
                ),
            ],
            Style(unit="short", min=0),
            dashed="^threshold .*",
        ),
        may_be_empty=True,
    )
    board.add(
        states(
            "Prediction drift detected",
            "Whether the prediction distribution drifted, per window.",
            [
                prom(
                    f"max by (model, window) (mlmon_prediction_drift_detected{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            DRIFT_STATES,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Multivariate reconstruction error vs threshold",
            "Mean squared PCA reconstruction error per row (standardised units) against the "
            "baseline's PCA (solid), and its calibrated threshold (dashed). Catches changes "
            "in how features move together that no single feature shows.",
            [
                prom(
                    "max by (model, window) "
                    f"(mlmon_multivariate_reconstruction_error{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                ),
                prom(
                    "max by (model, window) "
                    f"(mlmon_multivariate_reconstruction_threshold{{{IN_WINDOW}}})",
                    "threshold " + WINDOW_LEGEND,
                ),
            ],
            Style(unit="short", min=0),
            dashed="^threshold .*",
        ),
        may_be_empty=True,
    )
    board.add(
        states(
            "Multivariate drift detected",
            "Whether the reconstruction error is above its threshold, per window.",
            [
                prom(
                    f"max by (model, window) (mlmon_multivariate_drift_detected{{{IN_WINDOW}}})",
                    WINDOW_LEGEND,
                )
            ],
            DRIFT_STATES,
        ),
        may_be_empty=True,
    )
    return board.generate()
