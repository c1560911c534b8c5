"""The drift `examples.traffic` injects into live rows once its schedule starts.

One numeric feature (`income` by default) is shifted by `shift_std` standard deviations
of its training values (+1.5 by default: the mean of `income` moves from about 48.6 to
88.8 thousand); an integer feature's shifted value is rounded. Every other feature is
left exactly as drawn from the held-out rows, so a drift detector should flag that one
feature and no other. Two optional extras, off by default, make data-quality gauges
move too: `missing_share` of the rows send null for the same feature, and
`new_category_share` of the rows send `new_category` (unseen in training) as employment.

Intensity: 0 before the start, then rising linearly to 1 over `ramp_s` seconds (0: a
step). The shift and both shares are scaled by it. Ground truth is not touched: the
posted labels stay those of the original rows, so predictions on drifted inputs are
scored against what really happened and the model's measured performance drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from examples.credit_data import CATEGORICAL, INTEGER, NUMERIC

DEFAULT_FEATURE = "income"
DEFAULT_SHIFT_STD = 1.5


@dataclass(frozen=True)
class DriftSpec:
    feature: str = DEFAULT_FEATURE
    shift_std: float = DEFAULT_SHIFT_STD
    missing_share: float = 0.0
    new_category: str = "gig_worker"
    new_category_share: float = 0.0
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if self.feature not in NUMERIC:
            raise ValueError(f"drift feature {self.feature!r}: expected one of {NUMERIC}")
        for name in ("missing_share", "new_category_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name}: expected a share between 0 and 1; got {share}")
        if self.ramp_s < 0:
            raise ValueError(f"ramp_s: expected >= 0; got {self.ramp_s}")
        if not self.new_category:
            raise ValueError("new_category: expected a non-empty name")

    def describe(self, unit: float) -> str:
        """E.g. `income +1.5 std (+40.3)`, with the optional extras."""
        parts = [f"{self.feature} {self.shift_std:+g} std ({self.shift_std * unit:+.4g})"]
        if self.missing_share:
            parts.append(f"{self.missing_share:.0%} {self.feature} missing")
        if self.new_category_share:
            parts.append(f"{self.new_category_share:.0%} {CATEGORICAL}={self.new_category}")
        if self.ramp_s:
            parts.append(f"ramp {self.ramp_s:g} s")
        return ", ".join(parts)


def intensity(spec: DriftSpec, since_start_s: float) -> float:
    """0 before the start (negative time), 1 once ramped up."""
    if since_start_s < 0:
        return 0.0
    if spec.ramp_s == 0:
        return 1.0
    return min(1.0, since_start_s / spec.ramp_s)


def apply_drift(
    spec: DriftSpec,
    columns: dict[str, list[Any]],
    level: float,
    unit: float,
    rng: np.random.Generator,
) -> dict[str, list[Any]]:
    """A copy of `columns` drifted at `level` (0..1); `unit` is the feature's training std."""
    if level <= 0:
        return columns
    out = dict(columns)
    shift = level * spec.shift_std * unit
    values = [v + shift if v is not None else None for v in columns[spec.feature]]
    if spec.feature in INTEGER:
        values = [round(v) if v is not None else None for v in values]
    rows = len(values)
    if spec.missing_share:
        gone = rng.random(rows) < level * spec.missing_share
        values = [None if g else v for g, v in zip(gone.tolist(), values, strict=True)]
    out[spec.feature] = values
    if spec.new_category_share:
        new = rng.random(rows) < level * spec.new_category_share
        out[CATEGORICAL] = [
            spec.new_category if n else v
            for n, v in zip(new.tolist(), columns[CATEGORICAL], strict=True)
        ]
    return out
