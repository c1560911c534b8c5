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
class MultivariateResult:
    error: float  # mean squared reconstruction error per row, standardised units
    threshold: float
    components: int
    samples: int
    detected: bool


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
