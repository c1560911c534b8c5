"""Drift thresholds calibrated by resampling the baseline, once per baseline at start-up.

threshold(feature, method, n) = max(floor, q(n)), q(n) the (1 - false_alarm_rate) quantile
of the method's score between two samples of the same distribution, the window having n
values. So on stationary data a feature alarms in at most `false_alarm_rate` of windows,
whatever their size, and on large windows only changes above the floor alarm.

Null distributions:
- binned methods (psi, jensenshannon, hellinger): a parametric bootstrap of both sides.
  The window is Multinomial(n, p_ref) over all bins including the missing bin (n = every
  row of the window). The reference is redrawn too, since p_ref is itself an estimate: its
  non-missing shares as Multinomial(N, p) with N the values they were estimated from
  (numeric: the quantile reservoir, min(count, QUANTILE_SAMPLE_SIZE); categorical: count),
  its missing share as Binomial(count + missing_count, missing_rate). Small training sets
  thus get wider thresholds.
- wasserstein: a window of n values drawn with replacement from the baseline sample
  against a bootstrap of the whole sample, n capped at the sample's size (a larger window
  uses the cap's threshold: larger, so fewer alarms). n = the window's sample size.
  The distance between two resamples of the sample is a sum over the sample's sorted
  values of |F_window - F_reference| * gap; it is evaluated exactly at ~120 block
  boundaries (64 equal-count and 64 equal-width blocks, so tails keep their resolution),
  each gap weighted by the CDF difference at its nearest boundary. Against the exact sum
  over all 5,000 values (normal, lognormal, Poisson samples) this moves the 99% quantile
  by no more than the resampling noise (a few %), at a small fraction of the cost.
  Being a bootstrap of one sample, this null fits a given baseline less tightly than the
  binned ones: stationary windows of 100 values alarmed in 0.5-1.7% of windows across
  baselines at a 1% rate (binned methods: 0.3-0.8%).

q(n) is estimated from R resampled scores by an order statistic that is at or above the
true quantile with 90% confidence, not by the plain empirical quantile: with R = 1000 and
a 1% rate, the 995th smallest score rather than the 990th. The plain estimate scatters
around the truth, and half the features would then alarm more often than the configured
rate (1.4-1.7% measured at 200 rows); this one keeps them at or below it, for a threshold
about 4% higher.

q(n) is simulated on the settings' window sizes, made non-increasing in n (a running
maximum from the large end, so resampling noise cannot give a larger window a larger
threshold), and interpolated linearly in log n between them; clamped at both ends.
Simulation stops at the first size where every quantile is at or below its floor: larger
windows' thresholds are then their floors whatever their quantiles, and the large sizes
are the costly ones.
Each feature has its own random stream, from (seed, feature name): results are
deterministic and do not depend on the order or number of features.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from stats_service.baseline.contents import (
    Baseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.baseline.sketches import QUANTILE_SAMPLE_SIZE
from stats_service.checks.drift.binned import BINNED_METHODS
from stats_service.checks.drift.samples import finite, wasserstein_scale
from stats_service.checks.drift.settings import DriftSettings, Kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
PREDICTION = "prediction"
# Blocks of the Wasserstein null: this many of equal count plus this many of equal width.
WASSERSTEIN_BLOCKS = 64
# How sure a threshold is to lie at or above the true null quantile despite resampling
# noise (see `upper_rank`).
QUANTILE_CONFIDENCE = 0.9


@dataclass(frozen=True)
class ReferenceBins:
    """The baseline's shares on the bins a window is counted on, missing bin last.

    Numeric: the baseline's bins, then missing. Categorical: its categories, `__other__`,
    `__unseen__`, then missing. Non-missing shares are scaled by 1 - missing_rate.
    """

    shares: FloatArray
    present_n: int  # values the non-missing shares were estimated from
    total_n: int  # rows the missing share was estimated from


def reference_bins(
    feature: FeatureBaseline, reservoir: int = QUANTILE_SAMPLE_SIZE
) -> ReferenceBins:
    """`reservoir`: the numeric quantile reservoir's capacity, max(QUANTILE_SAMPLE_SIZE,
    baseline.sample_size) (see stats_service.baseline.build)."""
    missing = feature.missing_rate
    total = feature.count + feature.missing_count
    if isinstance(feature, NumericFeatureBaseline):
        present = np.array(feature.proportions, dtype=np.float64)
        present_n = min(feature.count, reservoir)
    else:
        present = np.array(
            [*feature.proportions, feature.other_proportion, feature.unseen_proportion],
            dtype=np.float64,
        )
        present_n = feature.count
    if feature.count == 0:  # proportions of nothing: all zeros, whatever they say
        present = np.zeros_like(present)
    shares = np.append(present * (1.0 - missing), missing)
    return ReferenceBins(shares=shares, present_n=present_n, total_n=total)


def feature_kind(feature: FeatureBaseline) -> Kind:
    return "numeric" if isinstance(feature, NumericFeatureBaseline) else "categorical"


@dataclass(frozen=True)
class NullCurve:
    """The null quantile of one method for one feature, by window size.

    `sizes` may stop short of the settings' largest: simulation stops at the first size
    whose quantile is at or below a positive floor (see `_simulate`); larger windows clamp
    to that quantile, so their threshold is the floor, as it would be anyway.
    """

    sizes: tuple[int, ...]  # empty: no null distribution (nothing to resample)
    quantiles: tuple[float, ...]  # non-increasing
    floor: float

    def threshold(self, n: int) -> float:
        if not self.sizes:
            return self.floor
        log_sizes = np.log(np.array(self.sizes, dtype=np.float64))
        q = float(np.interp(math.log(max(n, 1)), log_sizes, self.quantiles))
        return max(self.floor, q)


@dataclass(frozen=True)
class Calibration:
    false_alarm_rate: float
    curves: Mapping[tuple[str, str], NullCurve]  # (feature, method) -> curve

    def threshold(self, feature_name: str, method: str, n: int) -> float:
        """Threshold of an effect-size method for a window of n values (see the module).

        n counts what the score is computed from: every row of the window, missing ones
        included, for the binned methods; the window's sample size for wasserstein.
        `feature_name` is "prediction" for the prediction column. A feature whose
        reference has nothing to resample (no rows, no sample) gets the floor.
        """
        curve = self.curves.get((feature_name, method))
        if curve is None:
            raise KeyError(f"no calibrated {method} threshold for {feature_name!r}")
        return curve.threshold(n)


def calibrate(baseline: Baseline, settings: DriftSettings) -> Calibration:
    """Simulate every (feature, effect-size method) null curve; see the module docstring.

    Raises ValueError when a per-feature detection method does not apply to the feature,
    or when a feature is named "prediction" while the baseline has a prediction column.
    """
    named: list[tuple[str, FeatureBaseline]] = [(f.name, f) for f in baseline.features]
    if baseline.prediction is not None:
        if any(name == PREDICTION for name, _ in named):
            raise ValueError(f"a feature is named {PREDICTION!r}, the prediction column's name")
        named.append((PREDICTION, baseline.prediction))
    reservoir = max(QUANTILE_SAMPLE_SIZE, baseline.sample_size)
    curves: dict[tuple[str, str], NullCurve] = {}
    for name, feature in named:
        kind = feature_kind(feature)
        settings.detection_method(name, kind)  # fails early on an inapplicable override
        rng = _rng(settings.seed, name)
        floors = {method: settings.floor(name, method, kind) for method in BINNED_METHODS}
        binned = _binned_null(reference_bins(feature, reservoir), floors, settings, rng)
        for method, (sizes, quantiles) in binned.items():
            curves[name, method] = NullCurve(sizes, quantiles, floors[method])
        if isinstance(feature, NumericFeatureBaseline):
            floor = settings.floor(name, "wasserstein", kind)
            sizes, quantiles = _wasserstein_null(feature, floor, settings, rng)
            curves[name, "wasserstein"] = NullCurve(sizes, quantiles, floor)
    return Calibration(settings.false_alarm_rate, curves)


Curve = tuple[tuple[int, ...], tuple[float, ...]]


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"mlmon-calibration:{name}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def upper_rank(resamples: int, rate: float) -> int:
    """0-based rank of the order statistic used as the (1 - rate) quantile: the smallest
    that is at or above the true quantile with probability QUANTILE_CONFIDENCE (the count
    of resamples below the true quantile is Binomial(resamples, 1 - rate))."""
    rank = int(stats.binom.ppf(QUANTILE_CONFIDENCE, resamples, 1.0 - rate))
    return min(rank, resamples - 1)


def _simulate(
    sizes: Sequence[int],
    scores_at: Callable[[int], Mapping[str, FloatArray]],
    floors: Mapping[str, float],
    rate: float,
) -> dict[str, Curve]:
    """Null quantiles by size, smallest size first, up to the first size where every
    method's quantile is at or below its (positive) floor: quantiles only decrease with n,
    so larger sizes' thresholds are their floors, whatever their quantiles. This skips the
    costly large sizes without changing any threshold."""
    done: list[int] = []
    quantiles: dict[str, list[float]] = {method: [] for method in floors}
    rank: int | None = None
    for n in sizes:
        for method, scores in scores_at(n).items():
            if rank is None:
                rank = upper_rank(len(scores), rate)
            quantiles[method].append(float(np.partition(scores, rank)[rank]))
        done.append(n)
        if all(floors[m] > 0 and quantiles[m][-1] <= floors[m] for m in floors):
            break
    curves: dict[str, Curve] = {}
    for method, values in quantiles.items():
        envelope = np.maximum.accumulate(np.array(values)[::-1])[::-1]
        curves[method] = (tuple(done), tuple(envelope.tolist()))
    return curves


def _binned_null(
    reference: ReferenceBins,
    floors: Mapping[str, float],
    settings: DriftSettings,
    rng: np.random.Generator,
) -> dict[str, Curve]:
    shares = reference.shares
    if shares.sum() <= 0:
        return {method: ((), ()) for method in BINNED_METHODS}
    # Bins empty in the reference stay empty in every resample and add 0 to every score.
    kept = shares > 0
    resamples = settings.resamples
    missing = shares[-1]
    present = shares[:-1] / (1.0 - missing) if missing < 1 else np.zeros(len(shares) - 1)
    redrawn_missing = rng.binomial(reference.total_n, missing, resamples) / reference.total_n
    redrawn: FloatArray = np.zeros((resamples, len(present)))
    if reference.present_n > 0 and present.sum() > 0:
        drawn = rng.multinomial(reference.present_n, present / present.sum(), resamples)
        redrawn = drawn / reference.present_n
    references = np.column_stack((redrawn * (1.0 - redrawn_missing)[:, None], redrawn_missing))
    references = references[:, kept]
    p = shares[kept] / shares[kept].sum()

    def scores_at(n: int) -> dict[str, FloatArray]:
        windows = rng.multinomial(n, p, resamples) / n
        return {method: f(references, windows) for method, f in BINNED_METHODS.items()}

    return _simulate(settings.window_sizes, scores_at, floors, settings.false_alarm_rate)


def _wasserstein_null(
    feature: NumericFeatureBaseline,
    floor: float,
    settings: DriftSettings,
    rng: np.random.Generator,
) -> Curve:
    values = np.sort(finite(feature.sample))
    count = len(values)
    if count == 0:
        return (), ()
    sizes = sorted({min(n, count) for n in settings.window_sizes})
    if count == 1:
        return tuple(sizes), (0.0,) * len(sizes)
    scale = wasserstein_scale(feature.std, feature.mean)
    boundaries, masses, weights = _blocks(values)
    resamples = settings.resamples
    # Cumulative shares at the boundaries, the last block's (always 1) left out.
    reference = np.cumsum(rng.multinomial(count, masses, resamples), axis=1)[:, :-1] / count
    block_of = np.searchsorted(boundaries, np.arange(count), side="left")
    rows = (np.arange(resamples) * len(masses))[:, None]

    def scores_at(n: int) -> dict[str, FloatArray]:
        if n < len(masses):  # fewer draws than blocks: cheaper to draw positions
            drawn = block_of[rng.integers(0, count, (resamples, n))] + rows
            counts = np.bincount(drawn.ravel(), minlength=resamples * len(masses))
            counts = counts.reshape(resamples, len(masses))
        else:
            counts = rng.multinomial(n, masses, resamples)
        window = np.cumsum(counts, axis=1)[:, :-1] / n
        distances: FloatArray = np.abs(window - reference) @ weights / scale
        return {"wasserstein": distances}

    floors = {"wasserstein": floor}
    return _simulate(sizes, scores_at, floors, settings.false_alarm_rate)["wasserstein"]


def _blocks(values: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    """Block boundaries (positions in the sorted sample), block masses, boundary weights.

    Block k holds positions (boundaries[k-1], boundaries[k]], the last block runs to the
    end; the CDF at boundary k is exact, and weights[k] sums the gaps between consecutive
    values nearest to boundary k.
    """
    count = len(values)
    by_count = np.linspace(0, count - 1, WASSERSTEIN_BLOCKS + 1).round().astype(np.int64)
    grid = np.linspace(values[0], values[-1], WASSERSTEIN_BLOCKS + 1)
    by_width = np.searchsorted(values, grid, side="left")
    boundaries = np.unique(np.clip(np.concatenate((by_count, by_width)), 0, count - 2))
    masses = np.diff(np.concatenate(([-1], boundaries, [count - 1]))) / count
    gap_index = np.arange(count - 1)
    right = np.clip(np.searchsorted(boundaries, gap_index), 0, len(boundaries) - 1)
    left = np.clip(right - 1, 0, None)
    nearest = np.where(
        np.abs(boundaries[left] - gap_index) < np.abs(boundaries[right] - gap_index), left, right
    )
    weights: FloatArray = np.bincount(
        nearest, weights=np.diff(values), minlength=len(boundaries)
    ).astype(np.float64)
    return boundaries.astype(np.int64), masses, weights
