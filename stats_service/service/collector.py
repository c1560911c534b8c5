"""The stats service's /metrics: gauges yielded from the latest evaluation at scrape time.

A custom collector rather than gauges set by the loop: a scrape that lands while a cycle
is running still sees the previous cycle whole, never half of each, and windows or
features that disappear stop being exported instead of keeping their last value.
Undefined numbers (results: None) are left out, so no series is ever NaN.

Each family is declared once below (`FAMILIES`: name, help, labels), then filled from the
results; the dashboards' and rules' tests read the same declarations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stats_service.checks.results import FeatureDrift, WindowResult
from stats_service.service.runner import ModelContext, Runner

STATUSES = ("ok", "insufficient", "error")
WINDOW = ("model", "window")
FEATURE = (*WINDOW, "feature")


@dataclass(frozen=True)
class Family:
    """One gauge family: what /metrics says of it, whatever the values."""

    name: str
    help: str
    labels: tuple[str, ...]


BASELINE_INFO = Family(
    "mlmon_baseline_info",
    "The baseline each model is compared with (value 1).",
    ("model", "schema_hash", "data_sha256", "created_at"),
)
BASELINE_MISSING = Family(
    "mlmon_baseline_missing_ratio",
    "Share of training rows without a value for the feature.",
    ("model", "feature"),
)
LAST_EVALUATION = Family(
    "mlmon_last_evaluation_timestamp_seconds",
    "When the latest evaluation cycle started (Unix time).",
    (),
)
EVALUATION_DURATION = Family(
    "mlmon_evaluation_duration_seconds", "How long the latest evaluation cycle took.", ()
)
WINDOW_STATUS = Family(
    "mlmon_window_status",
    "1 for the window's evaluation status: ok, insufficient (too few rows) or error.",
    (*WINDOW, "status"),
)
WINDOW_SAMPLES = Family("mlmon_window_samples", "Rows in the window.", WINDOW)
DATASET_SHARE = Family(
    "mlmon_dataset_drift_share", "Share of features whose drift was detected.", WINDOW
)
DATASET_DETECTED = Family(
    "mlmon_dataset_drift_detected", "1 when the drifted share reaches drift.dataset_share.", WINDOW
)
MISSING = Family(
    "mlmon_feature_missing_ratio", "Share of the window's rows without a value.", FEATURE
)
UNSEEN = Family(
    "mlmon_feature_unseen_ratio",
    "Share of values outside the training vocabulary (categorical).",
    FEATURE,
)
OUT_OF_RANGE = Family(
    "mlmon_feature_out_of_range_ratio",
    "Share of values outside the training [min, max] (numeric).",
    FEATURE,
)
RECONSTRUCTION = Family(
    "mlmon_multivariate_reconstruction_error",
    "Mean squared PCA reconstruction error per row (standardised units).",
    WINDOW,
)
RECONSTRUCTION_THRESHOLD = Family(
    "mlmon_multivariate_reconstruction_threshold",
    "Calibrated threshold of the reconstruction error at this window's size.",
    WINDOW,
)
MULTIVARIATE_DETECTED = Family(
    "mlmon_multivariate_drift_detected",
    "1 when the reconstruction error is above its threshold.",
    WINDOW,
)
PERFORMANCE_SAMPLES = Family(
    "mlmon_model_performance_samples",
    "Labelled rows the performance metrics were computed on.",
    WINDOW,
)
PERFORMANCE = Family(
    "mlmon_model_performance",
    "Model quality over rows whose ground truth has arrived.",
    (*WINDOW, "metric"),
)
FEATURE_SCORE = Family(
    "mlmon_feature_drift_score",
    "Drift statistic of the feature against the baseline, by method.",
    (*FEATURE, "method"),
)
FEATURE_THRESHOLD = Family(
    "mlmon_feature_drift_threshold",
    "Calibrated threshold of the statistic at this window's size.",
    (*FEATURE, "method"),
)
FEATURE_PVALUE = Family(
    "mlmon_feature_drift_pvalue",
    "Benjamini-Hochberg adjusted p-value of the two-sample test.",
    (*FEATURE, "method"),
)
FEATURE_DETECTED = Family(
    "mlmon_feature_drift_detected",
    "1 when the feature's detection statistic is above its threshold.",
    (*FEATURE, "method"),
)
PREDICTION_SCORE = Family(
    "mlmon_prediction_drift_score",
    "Drift statistic of the prediction distribution, by method.",
    (*WINDOW, "method"),
)
PREDICTION_THRESHOLD = Family(
    "mlmon_prediction_drift_threshold",
    "Calibrated threshold of the prediction statistic at this window's size.",
    (*WINDOW, "method"),
)
PREDICTION_DETECTED = Family(
    "mlmon_prediction_drift_detected",
    "1 when the prediction distribution's drift is above its threshold.",
    (*WINDOW, "method"),
)
# Every family above, in declaration order: what /metrics may carry besides the counters.
FAMILIES = tuple(value for value in tuple(globals().values()) if isinstance(value, Family))
# Counters, from the runner's own counts (exposed with _total).
COUNTERS = {
    "mlmon_evaluations": "Evaluation cycles completed.",
    "mlmon_evaluation_errors": (
        "Windows that could not be read or evaluated (store down, bad data)."
    ),
}


class _Samples:
    """The families filled in one scrape, each created on its first sample."""

    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def add(self, family: Family, values: Sequence[str], value: float | None) -> None:
        if value is None:
            return
        metric = self.families.get(family.name)
        if metric is None:
            metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
            self.families[family.name] = metric
        metric.add_metric(list(values), float(value))


class StatsCollector(Collector):
    def __init__(self, runner: Runner, contexts: Mapping[str, ModelContext]) -> None:
        self.runner = runner
        self.contexts = contexts

    def collect(self) -> Iterator[Metric]:
        out = _Samples()
        for model, context in self.contexts.items():
            baseline = context.baseline
            identity = (model, baseline.schema_hash, baseline.data.sha256, baseline.created_at)
            out.add(BASELINE_INFO, identity, 1.0)
            for feature in baseline.features:
                out.add(BASELINE_MISSING, (model, feature.name), feature.missing_rate)
        evaluation = self.runner.latest
        if evaluation is not None:
            out.add(LAST_EVALUATION, (), evaluation.started_at)
            out.add(EVALUATION_DURATION, (), evaluation.duration_s)
            for result in evaluation.results:
                _window(out, result)
        yield from out.families.values()
        counts = {
            "mlmon_evaluations": self.runner.evaluations_total,
            "mlmon_evaluation_errors": self.runner.errors_total,
        }
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=counts[name])


def _window(out: _Samples, result: WindowResult) -> None:
    labels = (result.model, result.window)
    for status in STATUSES:
        out.add(WINDOW_STATUS, (*labels, status), float(result.status == status))
    if result.status == "error":
        return
    out.add(WINDOW_SAMPLES, labels, result.rows)
    if result.status != "ok":
        return
    for drift in result.features:
        _drift(out, (*labels, drift.feature), drift, FEATURE_SCORE, FEATURE_THRESHOLD)
        out.add(FEATURE_DETECTED, (*labels, drift.feature, drift.detection_method),
                float(drift.detected))  # fmt: skip
        for method in drift.methods:
            out.add(FEATURE_PVALUE, (*labels, drift.feature, method.method), method.pvalue)
    if result.prediction is not None:
        prediction = result.prediction
        _drift(out, labels, prediction, PREDICTION_SCORE, PREDICTION_THRESHOLD)
        out.add(PREDICTION_DETECTED, (*labels, prediction.detection_method),
                float(prediction.detected))  # fmt: skip
    if result.drift_share is not None:
        out.add(DATASET_SHARE, labels, result.drift_share)
        out.add(DATASET_DETECTED, labels, float(bool(result.dataset_drift)))
    for quality in result.quality:
        values = (*labels, quality.feature)
        out.add(MISSING, values, quality.missing_ratio)
        out.add(UNSEEN, values, quality.unseen_ratio)
        out.add(OUT_OF_RANGE, values, quality.out_of_range_ratio)
    if result.multivariate is not None:
        multivariate = result.multivariate
        out.add(RECONSTRUCTION, labels, multivariate.error)
        out.add(RECONSTRUCTION_THRESHOLD, labels, multivariate.threshold)
        out.add(MULTIVARIATE_DETECTED, labels, float(multivariate.detected))
    if result.performance is not None:
        out.add(PERFORMANCE_SAMPLES, labels, result.performance.samples)
        for metric, value in result.performance.metrics.items():
            out.add(PERFORMANCE, (*labels, metric), value)


def _drift(
    out: _Samples, values: tuple[str, ...], drift: FeatureDrift, score: Family, threshold: Family
) -> None:
    for method in drift.methods:
        out.add(score, (*values, method.method), method.score)
        out.add(threshold, (*values, method.method), method.threshold)
