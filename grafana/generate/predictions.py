"""Predictions: what the model answers, as the sidecar's worker parsed it."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    MODEL,
    ROWS_BY_MODEL,
    ROWS_PER_SECOND,
    SHARE,
    STACKED,
    Style,
    histogram_quantile,
    prom,
    quantiles,
    rare_failures,
    sidecar_model_variable,
    sum_rate,
)
from grafana.generate.panels import heatmap_panel, timeseries

PREDICTIONS = "mlmon_predictions_total"
CONFIDENCE = "mlmon_prediction_confidence"
VALUE = "mlmon_prediction_value"
BATCH_SIZE = "mlmon_batch_size"
BY_CLASS = sum_rate("model, class", PREDICTIONS, MODEL)
CLASS_MIX = f"{BY_CLASS} / ignoring (class) group_left {sum_rate('model', PREDICTIONS, MODEL)}"
AT_MOST_HALF = sum_rate("model", f"{CONFIDENCE}_bucket", f'{MODEL}, le="0.5"')
LOW_CONFIDENCE_SHARE = f"{AT_MOST_HALF} / {sum_rate('model', f'{CONFIDENCE}_count', MODEL)}"
MEAN_BATCH_SIZE = f"{ROWS_BY_MODEL} / {sum_rate('model', f'{BATCH_SIZE}_count', MODEL)}"


def build() -> Generated:
    board = Board(
        "mlmon-predictions",
        "mlmon / Predictions",
        "The model's answers as the sidecar parsed them: classes, values, confidence, "
        "non-finite outputs and batch sizes.",
        [sidecar_model_variable()],
    )
    _classes_row(board)
    _values_row(board)
    _outputs_row(board)
    return board.generate()


def _classes_row(board: Board) -> None:
    """Both panels may be empty: only a classifier's predictions have a class."""
    board.row("Classes")
    board.add(
        timeseries(
            "Class mix",
            "Share of predicted rows per predicted class, within each model. A shift here "
            "is prediction drift you can see before the stats service's next window.",
            [prom(CLASS_MIX, "{{model}} {{class}}")],
            SHARE,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Predicted rows by class",
            "Predicted rows per second by predicted class, stacked (classifiers only).",
            [prom(BY_CLASS, "{{model}} {{class}}")],
            Style(unit=ROWS_PER_SECOND, min=0),
            stack=STACKED,
        ),
        may_be_empty=True,
    )


def _values_row(board: Board) -> None:
    board.row("Values and confidence")
    board.add(
        heatmap_panel(
            "Prediction value distribution",
            "Numeric predictions per row, by histogram bucket over time (all selected models).",
            VALUE,
            MODEL,
            "short",
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Prediction value p5 / p50 / p95",
            "Quantiles of the numeric prediction, estimated from the histogram buckets.",
            quantiles("model", VALUE, MODEL, "{{model}}", (0.05, 0.5, 0.95)),
            Style(unit="short"),
        ),
        may_be_empty=True,
    )
    board.add(
        heatmap_panel(
            "Confidence distribution",
            "Score of the predicted class per row, by histogram bucket over time.",
            CONFIDENCE,
            MODEL,
            "percentunit",
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Confidence: median and share below 0.5",
            "Median score of the predicted class, and the share of rows whose score is at "
            "most 0.5 (the model is unsure). A rising low-confidence share often comes "
            "with input drift.",
            [
                prom(histogram_quantile(0.5, "model", CONFIDENCE, MODEL), "median {{model}}"),
                prom(LOW_CONFIDENCE_SHARE, "share <= 0.5 {{model}}"),
            ],
            SHARE,
        ),
        may_be_empty=True,
    )


def _outputs_row(board: Board) -> None:
    board.row("Outputs and batches")
    board.add(
        timeseries(
            "Non-finite predictions",
            "Predicted rows per second that were NaN or infinite: the model is broken for "
            "some inputs. Any value above 0 is red.",
            [prom(sum_rate("model", "mlmon_non_finite_predictions_total", MODEL), "{{model}}")],
            rare_failures(ROWS_PER_SECOND),
            threshold_lines=True,
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Batch size p50 / p99 / mean",
            "Input rows per inference request.",
            [
                *quantiles("model", BATCH_SIZE, MODEL, "{{model}}"),
                prom(MEAN_BATCH_SIZE, "mean {{model}}"),
            ],
            Style(unit="short", min=0),
        ),
        8,
    )
    board.add(
        timeseries(
            "Rows predicted",
            "Input rows per second (requests times their batch size), by model.",
            [prom(ROWS_BY_MODEL, "{{model}}")],
            Style(unit=ROWS_PER_SECOND, min=0),
        ),
        8,
    )
