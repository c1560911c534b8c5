"""The stats service's settings: one frozen object, validated at start-up.

Same sources and rules as the sidecar's (`exporter.config`): defaults < YAML file <
MLMON_* variables < command line. The store settings are the sidecar's, so one
`MLMON_STORE` serves both services.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from exporter.config import REQUIRED, load_settings, port_number, positive, setting
from exporter.store.settings import ElasticsearchSettings, store_url

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_ROWS = re.compile(r"^last_(\d+)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
METHODS = ("psi", "jensenshannon", "hellinger", "wasserstein", "ks", "chi2")
DETECTION_METHODS = ("psi", "jensenshannon", "hellinger", "wasserstein")


@dataclass(frozen=True)
class WindowSpec:
    """A sliding time window [now - duration_s, now), or the model's newest `rows` rows."""

    name: str
    duration_s: float | None = None
    rows: int | None = None


def parse_window(name: str) -> WindowSpec:
    """ "30s", "5m", "1h", "1d": a time window; "last_1000": the newest 1,000 rows."""
    if match := _DURATION.match(name):
        return WindowSpec(name, duration_s=float(int(match[1]) * _SECONDS[match[2]]))
    if match := _ROWS.match(name):
        return WindowSpec(name, rows=int(match[1]))
    raise ValueError(name)


def _windows(value: Any) -> str | None:
    if not value:
        return "at least one window"
    for name in value:
        try:
            spec = parse_window(name)
        except ValueError:
            return f'windows such as "5m", "1h", "1d" or "last_1000" (not {name!r})'
        if (spec.duration_s or spec.rows) == 0:
            return f"windows longer than 0 (not {name!r})"
    if len(set(value)) != len(value):
        return "distinct window names"
    return None


def _baselines(value: Any) -> str | None:
    return None if value else "at least one model: name=baseline.json"


def _rate(value: Any) -> str | None:
    return None if 0.0 < value < 0.5 else "a rate between 0 and 0.5, e.g. 0.01"


def _share(value: Any) -> str | None:
    return None if 0.0 < value <= 1.0 else "a share in (0, 1]"


def _at_least(minimum: int) -> Any:
    return lambda value: None if value >= minimum else f"an integer >= {minimum}"


def _floors(value: Any) -> str | None:
    for name, floor in value.items():
        if name not in DETECTION_METHODS:
            return f"floors keyed by method, one of {', '.join(DETECTION_METHODS)} (not {name!r})"
        if floor < 0:
            return f"floors >= 0 (not {name}={floor})"
    return None


def _feature_methods(value: Any) -> str | None:
    bad = [method for method in value.values() if method not in DETECTION_METHODS]
    return f"methods among {', '.join(DETECTION_METHODS)} (not {bad[0]!r})" if bad else None


def _non_negative_values(value: Any) -> str | None:
    return None if all(v >= 0 for v in value.values()) else "floors >= 0"


@dataclass(frozen=True)
class DriftSection:
    false_alarm_rate: float = setting(
        0.01, check=_rate, help="per-feature false alarms per evaluated window, calibrated"
    )
    numeric_method: Literal["psi", "jensenshannon", "hellinger", "wasserstein"] = setting(
        "jensenshannon"
    )
    categorical_method: Literal["psi", "jensenshannon", "hellinger"] = setting("jensenshannon")
    floors: Mapping[str, float] = setting(
        types.MappingProxyType({}),
        check=_floors,
        help="effect-size floors by method (defaults in stats_service.checks.drift.settings)",
    )
    feature_methods: Mapping[str, str] = setting(
        types.MappingProxyType({}), check=_feature_methods, help="detection method by feature"
    )
    feature_floors: Mapping[str, float] = setting(
        types.MappingProxyType({}), check=_non_negative_values, help="floor by feature"
    )
    dataset_share: float = setting(
        0.5, check=_share, help="dataset drift when this share of features drifted"
    )
    resamples: int = setting(1000, check=_at_least(100), help="calibration resamples per size")
    seed: int = setting(0)


@dataclass(frozen=True)
class MultivariateSection:
    enabled: bool = setting(True)
    variance: float = setting(0.9, check=_share, help="variance the PCA components keep")


ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")


def _estimated_thresholds(value: Any) -> str | None:
    for name, threshold in value.items():
        if name not in ESTIMATED_METRICS:
            return (
                f"thresholds keyed by metric, one of {', '.join(ESTIMATED_METRICS)} (not {name!r})"
            )
        if threshold < 0:
            return f"thresholds >= 0 (not {name}={threshold})"
    return None


@dataclass(frozen=True)
class EstimationSection:
    enabled: bool = setting(True, help="estimate performance without labels (CBPE, direct loss)")
    calibration: Literal["isotonic", "platt"] = setting("isotonic")
    thresholds: Mapping[str, float] = setting(
        types.MappingProxyType({}),
        check=_estimated_thresholds,
        help="alert when an estimated metric is below (errors: above) this, e.g. accuracy: 0.8",
    )


@dataclass(frozen=True)
class StatsSettings:
    baselines: Mapping[str, str] = setting(
        REQUIRED, check=_baselines, help="model name = baseline file (mlmon-stats baseline)"
    )
    store: str = setting("sqlite:///./mlmon.db", check=store_url, help="the sidecar's input log")
    windows: tuple[str, ...] = setting(("5m", "1h", "1d"), check=_windows)
    interval_s: float = setting(30.0, check=positive, help="seconds between evaluations")
    min_samples: int = setting(
        100, check=_at_least(1), help="windows with fewer rows are exported as insufficient"
    )
    host: str = setting("127.0.0.1")
    port: int = setting(8001, check=port_number)
    drift: DriftSection = DriftSection()
    multivariate: MultivariateSection = MultivariateSection()
    estimation: EstimationSection = EstimationSection()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()

    @property
    def window_specs(self) -> tuple[WindowSpec, ...]:
        return tuple(parse_window(name) for name in self.windows)


def load(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StatsSettings:
    return load_settings(
        StatsSettings, config_file=config_file, environ=environ, overrides=overrides
    )
