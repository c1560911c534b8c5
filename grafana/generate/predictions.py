"""Predictions: what the model answers, as the sidecar's worker parsed it."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import MODEL, RATE, ROWS_PER_SECOND, STACKED, Style, prom, query_variable
from grafana.generate.panels import heatmap_panel, timeseries

PREDICTIONS = f"mlmon_predictions_total{{{MODEL}}}"
CONFIDENCE = "mlmon_prediction_confidence"
VALUE = "mlmon_prediction_value"


def _histogram_quantile(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, sum by (model, le) (rate({metric}_bucket{{{MODEL}}}[{RATE}])))"


def build() -> Generated:
    board = Board(
        "mlmon-predictions",
        "mlmon / Predictions",
        "The model's answers as the sidecar parsed them: classes, values, confidence, "
        "non-finite outputs and batch sizes.",
        [
            query_variable(
                "model",
                "Model",
                "Models the sidecar has proxied requests for.",
                "label_values(mlmon_requests_total, model)",
            )
        ],
    )
    board.row("Classes")
    board.add(
        timeseries(
            "Class mix",
            "Share of predicted rows per predicted class, within each model. A shift here "
            "is prediction drift you can see before the stats service's next window.",
            [
                prom(
                    f"sum by (model, class) (rate({PREDICTIONS}[{RATE}])) / ignoring (class) "
                    f"group_left sum by (model) (rate({PREDICTIONS}[{RATE}]))",
                    "{{model}} {{class}}",
                )
            ],
            Style(unit="percentunit", min=0, max=1),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Predicted rows by class",
            "Predicted rows per second by predicted class, stacked (classifiers only).",
            [
                prom(
                    f"sum by (model, class) (rate({PREDICTIONS}[{RATE}]))",
                    "{{model}} {{class}}",
                )
            ],
            Style(unit=ROWS_PER_SECOND, min=0),
            stack=STACKED,
        ),
        may_be_empty=True,
    )

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
            [
                prom(_histogram_quantile(q, VALUE), f"p{round(q * 100)} {{{{model}}}}")
                for q in (0.05, 0.5, 0.95)
            ],
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
                prom(_histogram_quantile(0.5, CONFIDENCE), "median {{model}}"),
                prom(
                    f'sum by (model) (rate({CONFIDENCE}_bucket{{{MODEL}, le="0.5"}}[{RATE}])) / '
                    f"sum by (model) (rate({CONFIDENCE}_count{{{MODEL}}}[{RATE}]))",
                    "share <= 0.5 {{model}}",
                ),
            ],
            Style(unit="percentunit", min=0, max=1),
        ),
        may_be_empty=True,
    )

    board.row("Outputs and batches")
    board.add(
        timeseries(
            "Non-finite predictions",
            "Predicted rows per second that were NaN or infinite: the model is broken for "
            "some inputs. Any value above 0 is red.",
            [
                prom(
                    f"sum by (model) (rate(mlmon_non_finite_predictions_total{{{MODEL}}}[{RATE}]))",
                    "{{model}}",
                )
            ],
            Style(
                unit=ROWS_PER_SECOND, min=0, no_value="0", steps=(("green", None), ("red", 1e-9))
            ),
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
                prom(_histogram_quantile(0.5, "mlmon_batch_size"), "p50 {{model}}"),
                prom(_histogram_quantile(0.99, "mlmon_batch_size"), "p99 {{model}}"),
                prom(
                    f"sum by (model) (rate(mlmon_batch_size_sum{{{MODEL}}}[{RATE}])) / "
                    f"sum by (model) (rate(mlmon_batch_size_count{{{MODEL}}}[{RATE}]))",
                    "mean {{model}}",
                ),
            ],
            Style(unit="short", min=0),
        ),
        8,
    )
    board.add(
        timeseries(
            "Rows predicted",
            "Input rows per second (requests times their batch size), by model.",
            [
                prom(
                    f"sum by (model) (rate(mlmon_batch_size_sum{{{MODEL}}}[{RATE}]))",
                    "{{model}}",
                )
            ],
            Style(unit=ROWS_PER_SECOND, min=0),
        ),
        8,
    )
    return board.generate()
