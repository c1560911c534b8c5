"""The typed results of one evaluation: what the collector exports and the report shows.

Numbers that are undefined for a window (a statistic over no values, a metric without
both classes) are None, never NaN; the collector leaves such series out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ok", "insufficient", "error"]
TaskSource = Literal["schema", "inferred"]
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Histogram:
    """The baseline's and the window's shares over the same bins, for people to compare."""

    bins: tuple[str, ...]  # "[0.5, 1.2)", a category, "__other__", "__unseen__", "missing"
    baseline: tuple[float, ...]
    window: tuple[float, ...]


@dataclass(frozen=True)
class MethodResult:
    method: str  # psi | jensenshannon | hellinger | wasserstein | ks | chi2
    score: float | None  # the statistic; None when undefined (no values on one side)
    threshold: float | None = None  # effect-size methods: calibrated, never below the floor
    pvalue: float | None = None  # ks, chi2: Benjamini-Hochberg adjusted across features


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: Kind
    samples: int  # non-missing values in the window
    methods: tuple[MethodResult, ...]
    detection_method: str
    detected: bool
    histogram: Histogram

    def method(self, name: str) -> MethodResult | None:
        return next((m for m in self.methods if m.method == name), None)


@dataclass(frozen=True)
class FeatureQuality:
    feature: str
    missing_ratio: float
    unseen_ratio: float  # categorical: values outside the training vocabulary
    out_of_range_ratio: float  # numeric: values outside the training [min, max]
    baseline_missing_ratio: float
    baseline_unseen_ratio: float
    baseline_out_of_range_ratio: float


@dataclass(frozen=True)
class FeatureContribution:
    """One feature's part in a multivariate or dataset drift (`checks.multivariate`)."""

    feature: str
    # Share of the window's excess reconstruction error; None: the PCA does not use it.
    error_share: float | None
    method: str | None  # the feature's univariate detection method and score, next to it
    score: float | None
    detected: bool


@dataclass(frozen=True)
class MultivariateResult:
    error: float  # mean squared reconstruction error per row, standardised units
    threshold: float
    components: int
    samples: int
    detected: bool
    # Per PCA column, the window's mean squared residual (standardised units), in the
    # order of `PcaModel.used_columns`: what the root-cause ranking splits the error by.
    column_errors: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PerformanceResult:
    task: str  # regression | binary | multiclass
    samples: int  # labelled rows used
    # accuracy, precision, recall, f1, roc_auc, log_loss | mae, rmse; undefined ones absent.
    metrics: Mapping[str, float] = field(default_factory=dict)
    # "schema": the schema's prediction section; "inferred": told from the labelled rows
    # (stats_service.baseline.task_inference), `task_reason` saying from what.
    task_source: TaskSource = "schema"
    task_reason: str = ""
    confusion: ConfusionMatrix | None = None  # classifiers: truth by predicted label


@dataclass(frozen=True)
class ConfusionMatrix:
    """counts[i][j]: rows whose truth is classes[i] and prediction classes[j]. Classes
    beyond the cap are pooled as "__other__" (`checks.classification`)."""

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class EstimatedMetric:
    metric: str  # accuracy | precision | recall | f1 | roc_auc | mae | rmse
    value: float
    # The band the reference's sampling error allows at this window's size around the
    # reference's realised value; outside it the window is flagged (`alert`).
    lower: float
    upper: float
    reference: float
    sampling_error: float
    alert: bool
    threshold: float | None = None  # estimation.thresholds: alert below it too


@dataclass(frozen=True)
class EstimatedPerformance:
    """Performance estimated without labels (`checks.estimation`). No metric at all
    comes with `reason` saying why (no probabilities, no reference rows, ...)."""

    task: str
    method: str  # cbpe | direct_loss | none
    samples: int  # rows the estimate is over
    metrics: tuple[EstimatedMetric, ...] = ()
    calibration: str = ""  # cbpe: isotonic | platt | none, and why
    reason: str = ""
    notes: tuple[str, ...] = ()  # rows left out or repaired (unseen class, renormalised)

    def metric(self, name: str) -> EstimatedMetric | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(frozen=True)
class LabelCoverage:
    labelled: int  # rows of the window whose ground truth has arrived
    rows: int
    ratio: float


@dataclass(frozen=True)
class LabelDelay:
    """How old the window's labelled rows were when their labels arrived, in seconds,
    over the `count` of them whose arrival the store kept (None when there are none)."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


@dataclass(frozen=True)
class SegmentResult:
    """One segment of a window (`checks.segments`): a value of a `segment: true` feature,
    or "__other__" for the values beyond the largest K."""

    feature: str
    segment: str
    rows: int
    drift_share: float | None = None
    drifted: tuple[str, ...] = ()
    missing_ratio: float | None = None  # mean over the features
    performance: PerformanceResult | None = None
    estimated_performance: EstimatedPerformance | None = None


@dataclass(frozen=True)
class WindowResult:
    model: str
    window: str
    start_ts: float
    end_ts: float
    rows: int
    status: Status
    message: str = ""  # why a window is insufficient or failed
    features: tuple[FeatureDrift, ...] = ()
    quality: tuple[FeatureQuality, ...] = ()
    prediction: FeatureDrift | None = None
    multivariate: MultivariateResult | None = None
    performance: PerformanceResult | None = None
    drift_share: float | None = None
    dataset_drift: bool | None = None
    estimated_performance: EstimatedPerformance | None = None
    label_coverage: LabelCoverage | None = None
    label_delay: LabelDelay | None = None
    segments: tuple[SegmentResult, ...] = ()
    # Per metric, the segment doing worst ("feature=value"), for the report and alerts.
    worst_segments: tuple[tuple[str, str], ...] = ()
    # When dataset or multivariate drift is flagged: the features explaining it, strongest first.
    root_cause: tuple[FeatureContribution, ...] = ()
