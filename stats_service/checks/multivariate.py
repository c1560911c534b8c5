"""Multivariate drift: PCA reconstruction error against the baseline's row sample.

Univariate tests miss a change in how features move together (two features whose
correlation flips keep their marginals). A PCA fitted on training rows spans the
directions the data lives in; rows that leave them are reconstructed badly.

Fit (`fit_pca`, on `baseline.row_sample`, numeric features, NaN = missing):
- non-finite values are missing; rows with every column missing carry nothing and are
  dropped (in the window too);
- each column is standardised with the sample's mean and population std over its
  present values. Columns with fewer than 2 present values or a std of 0 (constant, up
  to rounding) are dropped: they have no variance to model, and a change in them is the
  univariate checks' job (out of range, drift). Missing values are imputed with the mean,
  0 once standardised;
- the rows are shuffled (the sample may keep the file's order) and split in half. PCA
  (SVD of the centred fit half) keeps the fewest components explaining >= `variance` of
  its variance, at most one fewer than the columns so that a residual always remains
  to watch (without correlation it is the least-variance direction);
- None when fewer than 2 columns are usable, fewer than `min_rows` rows remain, or the
  fit half has no variance.

Error: per row, the mean over the used columns of the squared residual (standardised
value minus its reconstruction); a window's error is the mean over its rows. On
training-like data it is about the share of variance left out, (1 - variance) or a
little more.

Threshold, calibrated on the held-out half so the null is that of unseen data, at the
window's size as the univariate thresholds are (`checks.drift.calibration`): for a window
of n rows, the (1 - false_alarm_rate) quantile of the mean error of n held-out rows drawn
with replacement, minus a redraw of the held-out mean (both sides resampled, since the
held-out mean the window is compared with is itself an estimate: with 2,500 held-out rows,
leaving that out put 1.9% of stationary 1,000-row windows of benchmarks/baseline_build.py's
data over a 1% target; 0.7% with it).
The quantile is the order statistic that lies at or above the true one with 90%
confidence (`calibration.upper_rank`), not the plain empirical quantile, which scatters
around it. It is simulated on a geometric grid of sizes from 1 to `max_window` (the
windows' row-sample cap: no window has more rows to evaluate), stopping at the first size
whose quantile is at or below the floor (larger windows get the floor anyway, and they are
the costly sizes); made non-increasing in n by a running maximum from the large end (so
resampling noise can only raise a threshold), interpolated linearly in log n and clamped
at the ends. The threshold is never below the effect-size floor `floor_ratio` x the
held-out mean error (1.1: the error must grow by 10% however large the window, as a
p-value alone would flag negligible changes in big windows), nor below 1e-6 (exactly
collinear training data leaves an error of 0). A window of a single row, or of fewer rows
than components, has a threshold like any other: the grid starts at 1 row.

Root cause (`rank_root_cause`), when dataset or multivariate drift is flagged: each PCA
column's share of the window's excess error (its mean squared residual in the window
minus that on the held-out half, floored at 0, over the sum of those excesses; the plain
share of the window's error when no column exceeds its held-out level), listed with the
feature's univariate detection score, largest share first. Features the PCA does not use
(categorical, constant) come after, ranked by whether they drifted and their score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from exporter.features.table import BoolArray, FloatArray
from stats_service.baseline.contents import Baseline
from stats_service.checks.drift.calibration import upper_rank
from stats_service.checks.results import FeatureContribution, FeatureDrift, MultivariateResult
from stats_service.windows.spec import ROW_SAMPLE_CAP

__all__ = ["PcaModel", "Projection", "fit_pca", "fit_projection", "rank_root_cause"]

VARIANCE = 0.9
FALSE_ALARM_RATE = 0.01
MIN_ROWS = 50
MAX_WINDOW = ROW_SAMPLE_CAP
GRID_POINTS = 25
FLOOR_RATIO = 1.1
ABSOLUTE_FLOOR = 1e-6
# Draws per resampling block, to bound memory (8 bytes each, twice).
_BLOCK = 1 << 20
# A std this small relative to the column's largest magnitude is rounding, not variance.
_RELATIVE_STD = 1e-12

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class Projection:
    """A PCA: `components` (k x d, orthonormal rows) around `center`."""

    center: FloatArray
    components: FloatArray
    explained: float  # share of the fit data's variance the components explain

    def residuals(self, z: FloatArray) -> FloatArray:
        centred = z - self.center
        result: FloatArray = centred - (centred @ self.components.T) @ self.components
        return result

    def errors(self, z: FloatArray) -> FloatArray:
        """Per row of `z`, the mean squared residual over the columns."""
        residual = self.residuals(z)
        result: FloatArray = np.mean(residual * residual, axis=1)
        return result


def fit_projection(z: FloatArray, variance: float) -> Projection | None:
    """PCA of `z` (rows x d, no NaN) keeping the fewest components that explain at least
    `variance` of its variance, at most d - 1; None when `z` has no variance."""
    width = z.shape[1]
    if width < 2 or len(z) < 2:
        return None
    center = z.mean(axis=0)
    _, singular, vt = np.linalg.svd(z - center, full_matrices=False)
    power = singular * singular
    total = float(power.sum())
    if not total > 0.0:
        return None
    cumulative = np.cumsum(power) / total
    k = min(int(np.searchsorted(cumulative, variance, side="left")) + 1, width - 1)
    return Projection(center=center, components=vt[:k], explained=float(cumulative[k - 1]))


@dataclass(frozen=True, eq=False)
class PcaModel:
    columns: tuple[str, ...]  # the row sample's columns, the order `evaluate` expects
    used: BoolArray  # per column: kept for the PCA
    mean: FloatArray  # of the used columns, over the baseline sample
    scale: FloatArray
    projection: Projection
    sizes: FloatArray  # calibration grid (window sizes)
    quantiles: FloatArray  # the error quantile at each size
    floor: float
    baseline_error: float  # held-out mean error
    false_alarm_rate: float
    # Per used column, its mean squared residual on the held-out half.
    baseline_column_errors: FloatArray = field(default_factory=lambda: np.empty(0))

    @property
    def used_columns(self) -> tuple[str, ...]:
        return tuple(name for name, used in zip(self.columns, self.used, strict=True) if used)

    @property
    def components(self) -> int:
        return len(self.projection.components)

    def threshold(self, samples: int) -> float:
        """The error above which a window of `samples` rows has drifted."""
        size = min(max(float(samples), self.sizes[0]), self.sizes[-1])
        value = float(np.interp(math.log(size), np.log(self.sizes), self.quantiles))
        return max(value, self.floor)

    def standardise(self, rows: FloatArray) -> FloatArray:
        """The used columns of `rows`, standardised, missing (non-finite) imputed with 0."""
        z = (rows[:, self.used] - self.mean) / self.scale
        result: FloatArray = np.where(np.isfinite(z), z, 0.0)
        return result

    def evaluate(self, rows: FloatArray) -> MultivariateResult | None:
        """The window's mean reconstruction error against its threshold; `rows` has the
        baseline row sample's columns, NaN = missing. None when no row has a value."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0:
            return None
        if rows.shape[1] != len(self.columns):
            raise ValueError(f"rows have {rows.shape[1]} columns, expected {len(self.columns)}")
        informative = np.isfinite(rows[:, self.used]).any(axis=1)
        if not informative.any():
            return None
        residual = self.projection.residuals(self.standardise(rows[informative]))
        squared = residual * residual
        errors = np.mean(squared, axis=1)
        error = float(errors.mean())
        threshold = self.threshold(len(errors))
        columns = squared.mean(axis=0).tolist()
        return MultivariateResult(
            error=error,
            threshold=threshold,
            components=self.components,
            samples=len(errors),
            detected=error > threshold,
            column_errors=tuple(zip(self.used_columns, columns, strict=True)),
        )


def fit_pca(
    baseline: Baseline,
    *,
    variance: float = VARIANCE,
    false_alarm_rate: float = FALSE_ALARM_RATE,
    seed: int = 0,
    min_rows: int = MIN_ROWS,
    replicates: int | None = None,
    max_window: int = MAX_WINDOW,
    floor_ratio: float = FLOOR_RATIO,
) -> PcaModel | None:
    """Fit and calibrate the PCA check on `baseline.row_sample` (module docstring).

    `replicates` (resampled windows per grid size) defaults to max(1000, 10 /
    false_alarm_rate), so that at least 10 of them lie beyond the quantile.
    """
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    if min_rows < 4 or max_window < 1 or floor_ratio < 0.0:
        raise ValueError("min_rows must be >= 4, max_window >= 1, floor_ratio >= 0")
    if replicates is None:
        replicates = max(1000, math.ceil(10.0 / false_alarm_rate))
    sample = baseline.row_sample
    matrix = sample.matrix()
    matrix = np.where(np.isfinite(matrix), matrix, np.nan)
    mean, std, used = _column_moments(matrix)
    if np.count_nonzero(used) < 2:
        return None
    matrix = matrix[np.isfinite(matrix[:, used]).any(axis=1)]
    if len(matrix) < min_rows:
        return None
    model_mean, model_scale = mean[used], std[used]
    z = (matrix[:, used] - model_mean) / model_scale
    z = np.where(np.isnan(z), 0.0, z)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(z))
    held_out, fit = order[: len(z) // 2], order[len(z) // 2 :]
    projection = fit_projection(z[fit], variance)
    if projection is None:
        return None
    held_residual = projection.residuals(z[held_out])
    held_squared = held_residual * held_residual
    held_errors = held_squared.mean(axis=1)
    baseline_error = float(held_errors.mean())
    floor = max(floor_ratio * baseline_error, ABSOLUTE_FLOOR)
    sizes, quantiles = _calibrate(held_errors, false_alarm_rate, replicates, max_window, floor, rng)
    return PcaModel(
        columns=sample.columns,
        used=used,
        mean=model_mean,
        scale=model_scale,
        projection=projection,
        sizes=sizes,
        quantiles=quantiles,
        floor=floor,
        baseline_error=baseline_error,
        false_alarm_rate=false_alarm_rate,
        baseline_column_errors=held_squared.mean(axis=0),
    )


def rank_root_cause(
    features: Sequence[FeatureDrift],
    multivariate: MultivariateResult | None,
    pca: PcaModel | None,
) -> tuple[FeatureContribution, ...]:
    """The features explaining a flagged drift, strongest first (module docstring)."""
    shares: dict[str, float] = {}
    if multivariate is not None and pca is not None and multivariate.column_errors:
        names = [name for name, _ in multivariate.column_errors]
        window = np.array([value for _, value in multivariate.column_errors])
        excess = np.maximum(window - pca.baseline_column_errors, 0.0)
        basis = excess if excess.sum() > 0 else window
        total = float(basis.sum())
        if total > 0:
            shares = {name: float(v) / total for name, v in zip(names, basis, strict=True)}
    ranked: list[FeatureContribution] = []
    for drift in features:
        method = drift.method(drift.detection_method)
        ranked.append(
            FeatureContribution(
                feature=drift.feature,
                error_share=shares.get(drift.feature),
                method=drift.detection_method,
                score=None if method is None else method.score,
                detected=drift.detected,
            )
        )
    ranked.sort(
        key=lambda c: (
            c.error_share is None,
            -(c.error_share or 0.0),
            not c.detected,
            -(c.score or 0.0),
        )
    )
    return tuple(ranked)


def _column_moments(matrix: FloatArray) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per column: mean, population std over the present values, and whether usable."""
    present = ~np.isnan(matrix)
    counts = present.sum(axis=0)
    divisor = np.maximum(counts, 1)
    mean = np.where(present, matrix, 0.0).sum(axis=0) / divisor
    deviation = np.where(present, matrix - mean, 0.0)
    std = np.sqrt((deviation * deviation).sum(axis=0) / divisor)
    largest = np.where(present, np.abs(matrix), 0.0).max(axis=0, initial=0.0)
    used = (counts >= 2) & (std > _RELATIVE_STD * largest)
    return mean, std, used


def _calibrate(
    errors: FloatArray,
    false_alarm_rate: float,
    replicates: int,
    max_window: int,
    floor: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Grid sizes and the null quantile of a window's mean error at each (module docstring)."""
    grid = np.unique(np.round(np.geomspace(1.0, max_window, GRID_POINTS))).astype(np.intp)
    # The held-out mean is what a window is compared with; redrawing it per replicate
    # carries its own sampling error into the null, as the univariate calibration does.
    shift = float(errors.mean()) - _resampled_means(errors, len(errors), replicates, rng)
    rank = upper_rank(replicates, false_alarm_rate)
    quantiles: list[float] = []
    for size in grid.tolist():
        null = _resampled_means(errors, size, replicates, rng) + shift
        quantiles.append(float(np.partition(null, rank)[rank]))
        if quantiles[-1] <= floor:
            break
    envelope = np.maximum.accumulate(np.array(quantiles)[::-1])[::-1]
    return grid[: len(quantiles)].astype(np.float64), envelope


def _resampled_means(
    errors: FloatArray, size: int, replicates: int, rng: np.random.Generator
) -> FloatArray:
    """`replicates` means of `size` values drawn with replacement from `errors`."""
    means = np.empty(replicates)
    block = max(1, _BLOCK // size)
    for start in range(0, replicates, block):
        stop = min(start + block, replicates)
        draws: IntArray = rng.integers(0, len(errors), size=(stop - start, size))
        means[start:stop] = errors[draws].mean(axis=1)
    return means
