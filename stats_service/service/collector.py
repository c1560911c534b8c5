"""The stats service's /metrics: gauges yielded from the latest evaluation at scrape time.

A custom collector rather than gauges set by the loop: a scrape that lands while a cycle
is running still sees the previous cycle whole, never half of each, and windows or
features that disappear stop being exported instead of keeping their last value.
Undefined numbers (results: None) are left out, so no series is ever NaN.

Each family is declared once below (`FAMILIES`: name, help, labels), then filled from the
results; the dashboards' and rules' tests read the same declarations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stats_service.checks.comparison import CandidateComparison
from stats_service.checks.model_health import DELAY_QUANTILES
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
    kind: Literal["gauge", "summary"] = "gauge"


BASELINE_INFO = Family(
    "mlmon_baseline_info",
    "The baseline each model is compared with (value 1).",
    ("model", "schema_hash", "data_sha256", "created_at"),
)
# Staleness: a model trained long ago on an old baseline decays silently. The served
# version's age needs no gauge here: the sidecar's first-seen timestamp gives it
# (alert MlmonModelVersionStale).
BASELINE_AGE = Family(
    "mlmon_baseline_age_seconds",
    "Seconds since the baseline was built (its created_at).",
    ("model",),
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
CANDIDATE = ("model", "candidate", "window")
CANDIDATE_SAMPLES = Family(
    "mlmon_candidate_samples",
    "Answers compared, per side: role primary, or the candidate's (shadow: its pairs with "
    "the primary's answers to the same request rows; canary: each side's own answers).",
    (*CANDIDATE, "role"),
)
CANDIDATE_AGREEMENT = Family(
    "mlmon_candidate_agreement_ratio",
    "Share of a shadow's answers with the same predicted label as the primary's.",
    CANDIDATE,
)
CANDIDATE_ABS_DIFF = Family(
    "mlmon_candidate_mean_abs_diff",
    "Mean absolute difference between a shadow's and the primary's prediction value or "
    "score (field) for the same request rows.",
    (*CANDIDATE, "field"),
)
CANDIDATE_DISTANCE = Family(
    "mlmon_candidate_prediction_distance",
    "Distance between the candidate's and the primary's prediction distributions, by method.",
    (*CANDIDATE, "method"),
)
CANDIDATE_PERFORMANCE = Family(
    "mlmon_candidate_performance",
    "Quality of each side (role primary, or the candidate's) over its labelled answers.",
    (*CANDIDATE, "role", "metric"),
)
ESTIMATED = Family(
    "mlmon_estimated_performance",
    "Model quality estimated without labels (CBPE for classifiers, direct loss for "
    "regressions), by metric.",
    (*WINDOW, "metric"),
)
ESTIMATED_LOWER = Family(
    "mlmon_estimated_performance_lower",
    "Lower end of the band the reference's sampling error allows at this window's size.",
    (*WINDOW, "metric"),
)
ESTIMATED_UPPER = Family(
    "mlmon_estimated_performance_upper",
    "Upper end of the band the reference's sampling error allows at this window's size.",
    (*WINDOW, "metric"),
)
ESTIMATED_ALERT = Family(
    "mlmon_estimated_performance_alert",
    "1 when the estimate left its band or crossed estimation.thresholds.",
    (*WINDOW, "metric"),
)
ESTIMATED_THRESHOLD = Family(
    "mlmon_estimated_performance_threshold",
    "The configured estimation.thresholds value of the metric.",
    (*WINDOW, "metric"),
)
ESTIMATED_SAMPLES = Family(
    "mlmon_estimated_performance_samples", "Rows the estimate is over.", WINDOW
)
LABEL_COVERAGE = Family(
    "mlmon_label_coverage_ratio", "Share of the window's rows whose ground truth arrived.", WINDOW
)
# A summary: promtool accepts a `quantile` label on summaries only. Its _count and _sum
# are the window's (labelled rows whose arrival is known, their delays' total), not
# running totals.
LABEL_DELAY = Family(
    "mlmon_label_delay_seconds",
    "How old the window's labelled rows were when their labels arrived, by quantile.",
    (*WINDOW, "quantile"),
    "summary",
)
SEGMENT = (*WINDOW, "feature", "segment")
SEGMENT_ROWS = Family(
    "mlmon_segment_rows",
    "Rows of the segment (a segment feature's largest values, the rest as __other__).",
    SEGMENT,
)
SEGMENT_DRIFT_SHARE = Family(
    "mlmon_segment_drift_share", "Share of features drifted within the segment.", SEGMENT
)
SEGMENT_PERFORMANCE = Family(
    "mlmon_segment_performance",
    "Model quality within the segment, over its labelled rows.",
    (*SEGMENT, "metric"),
)
SEGMENT_ESTIMATED = Family(
    "mlmon_segment_estimated_performance",
    "Model quality within the segment, estimated without labels.",
    (*SEGMENT, "metric"),
)
ROOT_CAUSE_SHARE = Family(
    "mlmon_drift_root_cause_share",
    "When dataset or multivariate drift is flagged: the feature's share of the excess "
    "PCA reconstruction error.",
    FEATURE,
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
        self.summaries: dict[str, Metric] = {}

    def add(self, family: Family, values: Sequence[str], value: float | None) -> None:
        if value is None:
            return
        metric = self.families.get(family.name)
        if metric is None:
            metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
            self.families[family.name] = metric
        metric.add_metric(list(values), float(value))

    def add_summary(
        self,
        family: Family,
        values: Sequence[str],
        quantiles: Sequence[tuple[float, float | None]],
        count: int,
        total: float,
    ) -> None:
        """One series of a summary `family` (its last label: `quantile`)."""
        metric = self.summaries.get(family.name)
        if metric is None:
            metric = Metric(family.name, family.help, family.kind)
            self.summaries[family.name] = metric
        labels = dict(zip(family.labels[:-1], values, strict=True))
        for quantile, value in quantiles:
            if value is not None:
                metric.add_sample(family.name, {**labels, "quantile": str(quantile)}, value)
        metric.add_sample(f"{family.name}_count", labels, float(count))
        metric.add_sample(f"{family.name}_sum", labels, total)


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
            out.add(BASELINE_AGE, (model,), _age(baseline.created_at))
            for feature in baseline.features:
                out.add(BASELINE_MISSING, (model, feature.name), feature.missing_rate)
        evaluation = self.runner.latest
        if evaluation is not None:
            out.add(LAST_EVALUATION, (), evaluation.started_at)
            out.add(EVALUATION_DURATION, (), evaluation.duration_s)
            for result in evaluation.results:
                _window(out, result)
            for comparison in evaluation.comparisons:
                _comparison(out, comparison)
        yield from out.families.values()
        yield from out.summaries.values()
        counts = {
            "mlmon_evaluations": self.runner.evaluations_total,
            "mlmon_evaluation_errors": self.runner.errors_total,
        }
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=counts[name])


def _age(created_at: str) -> float | None:
    """Seconds since an ISO 8601 UTC time; None (no sample) when it does not parse."""
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, time.time() - created.timestamp())


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
    _model_health(out, labels, result)


def _model_health(out: _Samples, labels: tuple[str, str], result: WindowResult) -> None:
    """Estimates, label coverage and delay, segments (at most K + 1 per segment feature),
    root cause."""
    if result.estimated_performance is not None:
        out.add(ESTIMATED_SAMPLES, labels, result.estimated_performance.samples)
        for estimate in result.estimated_performance.metrics:
            values = (*labels, estimate.metric)
            out.add(ESTIMATED, values, estimate.value)
            out.add(ESTIMATED_LOWER, values, estimate.lower)
            out.add(ESTIMATED_UPPER, values, estimate.upper)
            out.add(ESTIMATED_ALERT, values, float(estimate.alert))
            out.add(ESTIMATED_THRESHOLD, values, estimate.threshold)
    if result.label_coverage is not None:
        out.add(LABEL_COVERAGE, labels, result.label_coverage.ratio)
    if result.label_delay is not None:
        delay = result.label_delay
        quantiles = zip(DELAY_QUANTILES, (delay.p50, delay.p90, delay.p99), strict=True)
        total = (delay.mean or 0.0) * delay.count
        out.add_summary(LABEL_DELAY, labels, tuple(quantiles), delay.count, total)
    for segment in result.segments:
        where = (*labels, segment.feature, segment.segment)
        out.add(SEGMENT_ROWS, where, segment.rows)
        out.add(SEGMENT_DRIFT_SHARE, where, segment.drift_share)
        for metric, value in segment.performance.metrics.items() if segment.performance else ():
            out.add(SEGMENT_PERFORMANCE, (*where, metric), value)
        if segment.estimated_performance is not None:
            for estimate in segment.estimated_performance.metrics:
                out.add(SEGMENT_ESTIMATED, (*where, estimate.metric), estimate.value)
    for contribution in result.root_cause:
        out.add(ROOT_CAUSE_SHARE, (*labels, contribution.feature), contribution.error_share)


def _comparison(out: _Samples, comparison: CandidateComparison) -> None:
    labels = (comparison.model, comparison.candidate, comparison.window)
    out.add(CANDIDATE_SAMPLES, (*labels, "primary"), comparison.primary_samples)
    out.add(CANDIDATE_SAMPLES, (*labels, comparison.role), comparison.candidate_samples)
    out.add(CANDIDATE_AGREEMENT, labels, comparison.agreement)
    for field, value in comparison.mean_abs_diff.items():
        out.add(CANDIDATE_ABS_DIFF, (*labels, field), value)
    for method in comparison.distance:
        out.add(CANDIDATE_DISTANCE, (*labels, method.method), method.score)
    for role, performance in (
        ("primary", comparison.primary_performance),
        (comparison.role, comparison.candidate_performance),
    ):
        for metric, value in performance.metrics.items() if performance else ():
            out.add(CANDIDATE_PERFORMANCE, (*labels, role, metric), value)


def _drift(
    out: _Samples, values: tuple[str, ...], drift: FeatureDrift, score: Family, threshold: Family
) -> None:
    for method in drift.methods:
        out.add(score, (*values, method.method), method.score)
        out.add(threshold, (*values, method.method), method.threshold)
