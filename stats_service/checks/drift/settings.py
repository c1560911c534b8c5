"""What counts as drift: the false-alarm rate, effect-size floors and detection methods.

A feature drifts when its detection method's score exceeds the threshold
max(floor, null quantile at the window's size) (see `stats_service.checks.drift.calibration`). The
quantile keeps false alarms at `false_alarm_rate` per feature and window on small windows;
the floor is the smallest change worth an alert, which on large windows (where any change,
however small, is statistically significant) decides alone.

Default floors, chosen on 10 decile bins + a missing bin (what a numeric baseline has) and
on categorical shares; the figures are the exact scores of the shifted distributions:

| change                                    | JS     | Hellinger | PSI    | Wasserstein |
|-------------------------------------------|--------|-----------|--------|-------------|
| normal mean +0.1 std (must stay quiet)    | 0.042  | 0.035     | 0.0096 | 0.10        |
| normal mean +0.5 std                      | 0.205  | 0.171     | 0.238  | 0.50        |
| normal scale x1.5                         | 0.186  | 0.155     | 0.194  | 0.40        |
| missing 5% -> 15%                         | 0.145  | 0.122     | 0.121  |             |
| new category at 5%                        | 0.160  | 0.159     | 0.313  |             |
| +10 points on one of 5 categories         | 0.085-0.15 | 0.071-0.13 | 0.040-0.14 |     |
| default floor                             | 0.07   | 0.06      | 0.03   | 0.2         |

The floors sit well above a 0.1-std shift (x1.7 for JS) rather than just above it: a
window's score is the true distance plus sampling noise, so a floor close to 0.042 would
let a 0.1-std shift through where the null quantile crosses the floor (with a JS floor
of 0.05, in about half the windows of 2,000 rows). They stay below the smallest change
that must alert (+10 points on a category holding 40%: JS 0.085, detected in 99% of
3,000-row windows and all larger ones; a floor of 0.08 would miss 12% at 10,000 rows).
No floor silences a 0.1-std shift at 500-1,000 rows: there the calibrated quantile
(JS 0.09 at 500 rows) sets the threshold, and a test with 1% false alarms notices the
shift in ~10% of windows (measured: 6% at 500 rows, 14% at 700, 12% at 1,000, 1% at
2,000, 0 beyond; see benchmarks/detection_quality.py).
Wasserstein of a pure shift equals the shift in stds, so its floor is twice the 0.1 std
that must stay quiet.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["numeric", "categorical"]

BINNED_METHODS = ("psi", "jensenshannon", "hellinger")
EFFECT_SIZE_METHODS = (*BINNED_METHODS, "wasserstein")
NUMERIC_METHODS = (*EFFECT_SIZE_METHODS, "ks")
CATEGORICAL_METHODS = (*BINNED_METHODS, "chi2")
DEFAULT_FLOORS: Mapping[str, float] = {
    "jensenshannon": 0.07,
    "hellinger": 0.06,
    "psi": 0.03,
    "wasserstein": 0.2,
}
# Log-spaced window sizes (rows) at which null quantiles are simulated; a window between
# two sizes interpolates in log n, one beyond either end takes that end's value.
DEFAULT_WINDOW_SIZES = (50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


def _default_floors() -> dict[str, float]:
    return dict(DEFAULT_FLOORS)


@dataclass(frozen=True)
class DriftSettings:
    """Raises ValueError naming the field and what it expected when a value is invalid.

    `floors` may name only some methods; the others keep their defaults. `feature_methods`
    and `feature_floors` override, for one feature (the prediction column is named
    "prediction"), the detection method and that method's floor.
    """

    false_alarm_rate: float = 0.01
    numeric_method: str = "jensenshannon"
    categorical_method: str = "jensenshannon"
    floors: Mapping[str, float] = field(default_factory=_default_floors)
    feature_methods: Mapping[str, str] = field(default_factory=dict)
    feature_floors: Mapping[str, float] = field(default_factory=dict)
    window_sizes: tuple[int, ...] = DEFAULT_WINDOW_SIZES
    # 1000 resamples put ~10 null scores above a 99% quantile; more cost start-up time.
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        rate = self.false_alarm_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 0.5:
            raise ValueError(
                f"false_alarm_rate: expected a rate in (0, 0.5), e.g. 0.01, not {rate!r}"
            )
        _check_method("numeric_method", self.numeric_method, EFFECT_SIZE_METHODS)
        _check_method("categorical_method", self.categorical_method, BINNED_METHODS)
        for name, floor in self.floors.items():
            if name not in EFFECT_SIZE_METHODS:
                raise ValueError(
                    f"floors: expected keys among {', '.join(EFFECT_SIZE_METHODS)}, not {name!r}"
                )
            _check_floor(f"floors.{name}", floor)
        # Frozen: the merged mapping is set once, here, before anyone reads it.
        object.__setattr__(self, "floors", {**DEFAULT_FLOORS, **self.floors})
        for feature, method in self.feature_methods.items():
            _check_method(f"feature_methods.{feature}", method, EFFECT_SIZE_METHODS)
        for feature, floor in self.feature_floors.items():
            _check_floor(f"feature_floors.{feature}", floor)
        sizes = self.window_sizes
        if (
            not sizes
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)
            or any(a >= b for a, b in itertools.pairwise(sizes))
        ):
            raise ValueError(f"window_sizes: expected increasing integers >= 1, not {sizes!r}")
        resamples = self.resamples
        least = max(100, math.ceil(1 / rate))
        if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < least:
            raise ValueError(
                f"resamples: expected an integer >= {least} (at least one null score above "
                f"the {1 - rate:g} quantile), not {resamples!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, not {self.seed!r}")

    def detection_method(self, feature: str, kind: Kind) -> str:
        """The method whose score decides `detected` for this feature.

        Raises ValueError when a per-feature method does not apply to the feature's kind
        (wasserstein needs numbers): calibration, at start-up, is the first to ask.
        """
        default = self.numeric_method if kind == "numeric" else self.categorical_method
        method = self.feature_methods.get(feature, default)
        allowed = EFFECT_SIZE_METHODS if kind == "numeric" else BINNED_METHODS
        if method not in allowed:
            raise ValueError(
                f"feature_methods.{feature}: {feature!r} is {kind}; expected one of "
                f"{', '.join(allowed)}, not {method!r}"
            )
        return method

    def floor(self, feature: str, method: str, kind: Kind) -> float:
        """The floor of `method` for this feature: its own floor applies to its detection
        method only, as floors of different methods are on different scales."""
        if feature in self.feature_floors and method == self.detection_method(feature, kind):
            return float(self.feature_floors[feature])
        return float(self.floors[method])


def _check_method(name: str, method: object, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(allowed)}, not {method!r}")


def _check_floor(name: str, floor: object) -> None:
    if (
        isinstance(floor, bool)
        or not isinstance(floor, int | float)
        or not math.isfinite(floor)
        or floor < 0
    ):
        raise ValueError(f"{name}: expected a finite number >= 0, not {floor!r}")
