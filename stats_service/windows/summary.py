"""What the statistics see of a window: counts on the baseline's bins, samples, labelled rows.

Every store produces this one shape, whatever it holds: SQLite windows are read whole and
summarised here (`summarize_numeric`, `summarize_categorical`); Elasticsearch windows are
aggregated in the cluster into the same counts. So each statistic is written once, over a
`WindowSummary`, and a window's size only matters to the reader, never to the statistics.

Conventions (those of the baseline, see `baseline.contents`):
- numeric `counts[i]` counts finite values v with edges[i] <= v < edges[i+1] on the
  baseline's edges; NaN and None are `missing`; +-inf fall into the end bins;
- `sample` is a uniform sample of the non-missing values (all of them up to the cap);
- categorical `counts` holds each value seen; `other` counts values the store did not
  break down (a `terms` aggregation's remainder), never a real category.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.records import LabelValue
from stats_service.baseline.contents import NumericFeatureBaseline

FloatArray = npt.NDArray[np.float64]
# Two-sample tests on more values than this add time, not information.
SAMPLE_CAP = 100_000
# Rows of `PredictionRows`: an estimate over 100,000 rows has a sampling error far
# below any band it is compared with.
PREDICTION_CAP = 100_000


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class NumericSummary:
    counts: tuple[int, ...]  # one per baseline bin
    missing: int
    below_minimum: int  # finite values below the baseline's minimum
    above_maximum: int
    sample: FloatArray = field(default_factory=_empty)

    @property
    def present(self) -> int:
        return sum(self.counts)

    @property
    def total(self) -> int:
        return self.present + self.missing


@dataclass(frozen=True)
class CategoricalSummary:
    counts: Mapping[str, int]
    missing: int
    other: int = 0

    @property
    def present(self) -> int:
        return sum(self.counts.values()) + self.other

    @property
    def total(self) -> int:
        return self.present + self.missing


ColumnSummary = NumericSummary | CategoricalSummary


@dataclass(frozen=True)
class Labelled:
    """Rows of the window whose ground truth has arrived, with what the model predicted."""

    truth: tuple[LabelValue, ...] = ()
    predicted_value: FloatArray = field(default_factory=_empty)  # NaN = none
    predicted_label: tuple[str | None, ...] = ()
    score: FloatArray = field(default_factory=_empty)  # NaN = none
    # Class -> each row's probability of it (NaN = not given); empty: no row had any.
    probabilities: Mapping[str, FloatArray] = field(default_factory=dict)
    # Seconds from each row's timestamp to its label's arrival, >= 0 (NaN = unknown: the
    # store did not keep when). Empty: unknown for every row.
    delay: FloatArray = field(default_factory=_empty)

    @property
    def count(self) -> int:
        return len(self.truth)


@dataclass(frozen=True)
class PredictionRows:
    """What the model answered for the window's rows, labelled or not: every row, or a
    uniform sample of PREDICTION_CAP of them (`rows` counts them all). What estimates
    performance without labels (`checks.estimation`)."""

    rows: int = 0
    value: FloatArray = field(default_factory=_empty)  # NaN = none
    label: tuple[str | None, ...] = ()
    score: FloatArray = field(default_factory=_empty)  # NaN = none
    probabilities: Mapping[str, FloatArray] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class WindowSummary:
    model: str
    window: str
    start_ts: float
    end_ts: float
    rows: int
    columns: Mapping[str, ColumnSummary]  # one per baseline feature, by name
    prediction: ColumnSummary | None = None
    # Whole rows of the baseline's `row_sample.columns`, NaN = missing (multivariate checks).
    row_sample: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    labelled: Labelled = field(default_factory=Labelled)
    predictions: PredictionRows = field(default_factory=PredictionRows)
    # The prediction value of each `row_sample` row (NaN = none): direct-loss estimates.
    row_predictions: FloatArray = field(default_factory=_empty)
    # `segment: true` feature -> its largest segments' summaries (`windows.segments`).
    segments: Mapping[str, Mapping[str, WindowSummary]] = field(default_factory=dict)


def summarize_numeric(
    values: npt.NDArray[Any],
    baseline: NumericFeatureBaseline,
    *,
    sample_cap: int = SAMPLE_CAP,
    seed: int = 0,
) -> NumericSummary:
    """Counts of `values` (NaN = missing) on the baseline's bins, and a sample of them.

    float32 values (the SQLite store's) are compared as float32 when the edges and the
    range are float32 numbers (`windows.sqlite` rounds them so), which gives the same
    answers as in float64 without a float64 copy of the column."""
    values = np.asarray(values)
    edges = np.asarray(baseline.edges, dtype=np.float64)
    bounds = [b for b in (baseline.minimum, baseline.maximum) if b is not None]
    if values.dtype != np.float32 or not _exact_in_float32(np.append(edges, bounds)):
        values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    # Bin i holds edges[i] <= v < edges[i + 1], the end bins also what lies beyond: the
    # differences of the counts below each inner edge. One comparison pass per edge costs
    # a twentieth of a binary search per value.
    inner = edges[1:-1].astype(values.dtype)
    below_edges = [np.count_nonzero(present < edge) for edge in inner]
    counts = np.diff([0, *below_edges, len(present)])
    below = above = 0
    if baseline.minimum is not None and baseline.maximum is not None:
        below = int(np.count_nonzero(present < values.dtype.type(baseline.minimum)))
        above = int(np.count_nonzero(present > values.dtype.type(baseline.maximum)))
    if len(present) > sample_cap:
        chosen = np.random.default_rng(seed).choice(len(present), sample_cap, replace=False)
        present = present[np.sort(chosen)]
    return NumericSummary(
        counts=tuple(int(c) for c in counts),
        missing=len(values) - int(counts.sum()),
        below_minimum=below,
        above_maximum=above,
        sample=np.asarray(present, dtype=np.float64),
    )


def _exact_in_float32(numbers: npt.NDArray[np.float64]) -> bool:
    with np.errstate(over="ignore"):  # beyond float32's range: not exact, as wanted
        return bool(np.array_equal(numbers.astype(np.float32).astype(np.float64), numbers))


def summarize_categorical(values: Sequence[str | None]) -> CategoricalSummary:
    counts = Counter(values)
    missing = counts.pop(None, 0)
    return CategoricalSummary(
        counts={value: n for value, n in counts.items() if value is not None}, missing=missing
    )
