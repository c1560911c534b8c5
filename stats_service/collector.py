"""The stats service's /metrics: gauges yielded from the latest evaluation at scrape time.

A custom collector rather than gauges set by the loop: a scrape that lands while a cycle
is running still sees the previous cycle whole, never half of each, and windows or
features that disappear stop being exported instead of keeping their last value.
Undefined numbers (results.py: None) are left out, so no series is ever NaN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stats_service.results import FeatureDrift, WindowResult
from stats_service.runner import ModelContext, Runner

STATUSES = ("ok", "insufficient", "error")
WINDOW = ["model", "window"]
FEATURE = [*WINDOW, "feature"]


class _Families:
    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, doc: str, labels: list[str], values: list[str], value: float) -> None:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = GaugeMetricFamily(name, doc, labels=labels)
        family.add_metric(values, value)


class StatsCollector(Collector):
    def __init__(self, runner: Runner, contexts: Mapping[str, ModelContext]) -> None:
        self.runner = runner
        self.contexts = contexts

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        for model, context in self.contexts.items():
            baseline = context.baseline
            out.add(
                "mlmon_baseline_info",
                "The baseline each model is compared with (value 1).",
                ["model", "schema_hash", "data_sha256", "created_at"],
                [model, baseline.schema_hash, baseline.data.sha256, baseline.created_at],
                1.0,
            )
            for feature in baseline.features:
                out.add(
                    "mlmon_baseline_missing_ratio",
                    "Share of training rows without a value for the feature.",
                    ["model", "feature"],
                    [model, feature.name],
                    feature.missing_rate,
                )
        evaluation = self.runner.latest
        if evaluation is not None:
            out.add(
                "mlmon_last_evaluation_timestamp_seconds",
                "When the latest evaluation cycle started (Unix time).",
                [],
                [],
                evaluation.started_at,
            )
            out.add(
                "mlmon_evaluation_duration_seconds",
                "How long the latest evaluation cycle took.",
                [],
                [],
                evaluation.duration_s,
            )
            for result in evaluation.results:
                _window(out, result)
        yield from out.families.values()
        yield CounterMetricFamily(
            "mlmon_evaluations",
            "Evaluation cycles completed.",
            value=self.runner.evaluations_total,
        )
        yield CounterMetricFamily(
            "mlmon_evaluation_errors",
            "Windows that could not be read or evaluated (store down, bad data).",
            value=self.runner.errors_total,
        )


def _window(out: _Families, result: WindowResult) -> None:
    labels = [result.model, result.window]
    for status in STATUSES:
        out.add(
            "mlmon_window_status",
            "1 for the window's evaluation status: ok, insufficient (too few rows) or error.",
            [*WINDOW, "status"],
            [*labels, status],
            float(result.status == status),
        )
    if result.status == "error":
        return
    out.add("mlmon_window_samples", "Rows in the window.", WINDOW, labels, result.rows)
    if result.status != "ok":
        return
    for drift in result.features:
        _feature(out, labels, drift)
    if result.prediction is not None:
        _prediction(out, labels, result.prediction)
    if result.drift_share is not None:
        out.add(
            "mlmon_dataset_drift_share",
            "Share of features whose drift was detected.",
            WINDOW,
            labels,
            result.drift_share,
        )
        out.add(
            "mlmon_dataset_drift_detected",
            "1 when the drifted share reaches drift.dataset_share.",
            WINDOW,
            labels,
            float(bool(result.dataset_drift)),
        )
    for quality in result.quality:
        values = [*labels, quality.feature]
        out.add(
            "mlmon_feature_missing_ratio",
            "Share of the window's rows without a value.",
            FEATURE,
            values,
            quality.missing_ratio,
        )
        out.add(
            "mlmon_feature_unseen_ratio",
            "Share of values outside the training vocabulary (categorical).",
            FEATURE,
            values,
            quality.unseen_ratio,
        )
        out.add(
            "mlmon_feature_out_of_range_ratio",
            "Share of values outside the training [min, max] (numeric).",
            FEATURE,
            values,
            quality.out_of_range_ratio,
        )
    if result.multivariate is not None:
        multivariate = result.multivariate
        out.add(
            "mlmon_multivariate_reconstruction_error",
            "Mean squared PCA reconstruction error per row (standardised units).",
            WINDOW,
            labels,
            multivariate.error,
        )
        out.add(
            "mlmon_multivariate_reconstruction_threshold",
            "Calibrated threshold of the reconstruction error at this window's size.",
            WINDOW,
            labels,
            multivariate.threshold,
        )
        out.add(
            "mlmon_multivariate_drift_detected",
            "1 when the reconstruction error is above its threshold.",
            WINDOW,
            labels,
            float(multivariate.detected),
        )
    if result.performance is not None:
        performance = result.performance
        out.add(
            "mlmon_model_performance_samples",
            "Labelled rows the performance metrics were computed on.",
            WINDOW,
            labels,
            performance.samples,
        )
        for metric, value in performance.metrics.items():
            out.add(
                "mlmon_model_performance",
                "Model quality over rows whose ground truth has arrived.",
                [*WINDOW, "metric"],
                [*labels, metric],
                value,
            )


def _feature(out: _Families, labels: list[str], drift: FeatureDrift) -> None:
    values = [*labels, drift.feature]
    for method in drift.methods:
        with_method = [*values, method.method]
        if method.score is not None:
            out.add(
                "mlmon_feature_drift_score",
                "Drift statistic of the feature against the baseline, by method.",
                [*FEATURE, "method"],
                with_method,
                method.score,
            )
        if method.threshold is not None:
            out.add(
                "mlmon_feature_drift_threshold",
                "Calibrated threshold of the statistic at this window's size.",
                [*FEATURE, "method"],
                with_method,
                method.threshold,
            )
        if method.pvalue is not None:
            out.add(
                "mlmon_feature_drift_pvalue",
                "Benjamini-Hochberg adjusted p-value of the two-sample test.",
                [*FEATURE, "method"],
                with_method,
                method.pvalue,
            )
    out.add(
        "mlmon_feature_drift_detected",
        "1 when the feature's detection statistic is above its threshold.",
        [*FEATURE, "method"],
        [*values, drift.detection_method],
        float(drift.detected),
    )


def _prediction(out: _Families, labels: list[str], drift: FeatureDrift) -> None:
    for method in drift.methods:
        if method.score is not None:
            out.add(
                "mlmon_prediction_drift_score",
                "Drift statistic of the prediction distribution, by method.",
                [*WINDOW, "method"],
                [*labels, method.method],
                method.score,
            )
        if method.threshold is not None:
            out.add(
                "mlmon_prediction_drift_threshold",
                "Calibrated threshold of the prediction statistic at this window's size.",
                [*WINDOW, "method"],
                [*labels, method.method],
                method.threshold,
            )
    out.add(
        "mlmon_prediction_drift_detected",
        "1 when the prediction distribution's drift is above its threshold.",
        [*WINDOW, "method"],
        [*labels, drift.detection_method],
        float(drift.detected),
    )
