"""What a baseline holds: the reference distributions drift is measured against.

Conventions:
- Numeric bins are [edges[i], edges[i+1]) with edges[0] = -inf and edges[-1] = +inf,
  so every finite value falls in one bin; `proportions[i]` is the share of the feature's
  non-missing values in bin i. Missing values are their own bin: `missing_count` of
  `count + missing_count` rows (a row without a usable value: null, absent, or a type
  mismatch).
- Categorical: `proportions[i]` is the share of `categories[i]` among non-missing values,
  `other_proportion` the share folded into `__other__` (categories beyond the cap), and
  `unseen_proportion` the unseen bucket, 0 in the reference by construction. A live
  value outside `categories` is "unseen" when `other_proportion` is 0, otherwise it
  may be a rare training value and belongs to `__other__`.
- Samples are uniform reservoir samples (deterministic) of non-missing values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from exporter.features.table import FloatArray
from exporter.schema import Schema
from stats_service.baseline.reference import ReferenceRows

FORMAT_VERSION = 1


class BaselineError(Exception):
    """A baseline that cannot be built or loaded; the message says which file and why."""


@dataclass(frozen=True)
class NumericFeatureBaseline:
    name: str
    count: int
    missing_count: int
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    # None when the feature has no value at all in the training data.
    minimum: float | None
    maximum: float | None
    mean: float | None
    std: float | None  # population (ddof=0)
    sample: tuple[float, ...]

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing_count
        return self.missing_count / total if total else 0.0


@dataclass(frozen=True)
class CategoricalFeatureBaseline:
    name: str
    count: int
    missing_count: int
    categories: tuple[str, ...]
    proportions: tuple[float, ...]
    other_proportion: float
    unseen_proportion: float
    sample: tuple[str, ...]

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing_count
        return self.missing_count / total if total else 0.0


FeatureBaseline = NumericFeatureBaseline | CategoricalFeatureBaseline


@dataclass(frozen=True)
class RowSample:
    """Whole rows of the numeric features (for multivariate checks); NaN = missing."""

    columns: tuple[str, ...]
    rows: tuple[tuple[float, ...], ...]

    def matrix(self) -> FloatArray:
        return np.array(self.rows, dtype=np.float64).reshape(len(self.rows), len(self.columns))


@dataclass(frozen=True)
class DataInfo:
    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Baseline:
    format_version: int
    created_at: str  # UTC, ISO 8601
    schema: Schema
    schema_hash: str
    data: DataInfo
    bins: int
    sample_size: int
    features: tuple[FeatureBaseline, ...]
    row_sample: RowSample
    # "<kind>:<feature>" -> rows with that issue in the training data.
    issue_counts: dict[str, int] = field(default_factory=dict)
    prediction: FeatureBaseline | None = None
    label: FeatureBaseline | None = None
    # Drift thresholds calibrated by resampling the training data at the live window
    # size: a later issue. None means "not calibrated", never a made-up default.
    thresholds: None = None
    # Labelled rows with their probabilities (or errors), for estimating performance
    # without labels (`baseline.reference`); None in baselines built without labels.
    reference: ReferenceRows | None = None

    def feature(self, name: str) -> FeatureBaseline:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


def proportions_ok(values: tuple[float, ...], total: float) -> bool:
    """Shares in [0, 1] summing to `total` (1, or 0 for no data) within rounding."""
    return all(0.0 <= v <= 1.0 for v in values) and math.isclose(
        math.fsum(values), total, abs_tol=1e-6
    )
