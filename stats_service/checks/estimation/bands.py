"""The band an estimate is compared with: the reference's realised value, plus or minus
Z times the metric's sampling error at the window's size.

Sampling error: the standard deviation of the metric over `draws` bootstrap samples of
`size` reference rows (size = min(reference rows, 1,000)), scaled to a window of n rows
by sqrt(size / n), the rate every metric here converges at (a mean, a ratio of means,
the Mann-Whitney statistic). NannyML computes the sampling error of its estimates the
same way, from the reference, and flags a chunk at three of them (Z = 3): a window of
stationary data then leaves the band about 0.3% of the time per metric. Bounds are
clipped to the metric's range ([0, 1] for classifiers, [0, inf) for errors).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stats_service.checks.results import EstimatedMetric

Z = 3.0
DRAWS = 200
BOOTSTRAP_SIZE = 1000
# Metrics for which a configured threshold is a ceiling, not a floor.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})

IntArray = npt.NDArray[np.intp]
# Realised metrics of the reference rows at the given indices.
RealisedFn = Callable[[IntArray], Mapping[str, float]]


@dataclass(frozen=True)
class Band:
    reference: float  # realised on the whole reference
    sampling_error: float  # at `size` rows
    size: int
    upper_limit: float | None = 1.0  # None: unbounded above (errors)

    def at(self, rows: int) -> tuple[float, float, float]:
        """(lower, upper, sampling error) for a window of `rows` rows."""
        error = self.sampling_error * math.sqrt(self.size / max(rows, 1))
        lower = max(0.0, self.reference - Z * error)
        upper = self.reference + Z * error
        if self.upper_limit is not None:
            upper = min(self.upper_limit, upper)
        return lower, upper, error


def reference_bands(
    realised: RealisedFn,
    rows: int,
    *,
    seed: int = 0,
    draws: int = DRAWS,
    upper_limit: float | None = 1.0,
) -> dict[str, Band]:
    """A band per metric defined on the whole reference (`realised` over all rows)."""
    whole = realised(np.arange(rows))
    size = min(rows, BOOTSTRAP_SIZE)
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {name: [] for name in whole}
    for _ in range(draws):
        sample = realised(rng.integers(0, rows, size=size))
        for name in whole:
            if name in sample and math.isfinite(sample[name]):
                values[name].append(sample[name])
    return {
        name: Band(
            reference=value,
            sampling_error=float(np.std(values[name])) if len(values[name]) > 1 else 0.0,
            size=size,
            upper_limit=upper_limit,
        )
        for name, value in whole.items()
    }


def judged(
    estimates: Mapping[str, float],
    bands: Mapping[str, Band],
    rows: int,
    thresholds: Mapping[str, float],
) -> tuple[EstimatedMetric, ...]:
    """Each estimate against its band (and its configured threshold, if any)."""
    out: list[EstimatedMetric] = []
    for name, value in estimates.items():
        band = bands.get(name)
        if band is None or not math.isfinite(value):
            continue
        lower, upper, error = band.at(rows)
        threshold = thresholds.get(name)
        below = threshold is not None and (
            value > threshold if name in LOWER_IS_BETTER else value < threshold
        )
        out.append(
            EstimatedMetric(
                metric=name,
                value=value,
                lower=lower,
                upper=upper,
                reference=band.reference,
                sampling_error=error,
                alert=not lower <= value <= upper or below,
                threshold=threshold,
            )
        )
    return tuple(out)
