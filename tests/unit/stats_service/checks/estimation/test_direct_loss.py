"""Direct loss estimation: errors that depend on a feature are learned from the
reference, so a window moving into the noisy region gets a higher estimated MAE/RMSE."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from exporter.schema import parse_schema
from stats_service.baseline.build import build_baseline
from stats_service.checks.estimation.direct_loss import DirectLossModel, fit_direct_loss

SCHEMA = parse_schema(
    {
        "features": [{"name": "x", "type": "numeric"}, {"name": "z", "type": "numeric"}],
        "prediction": {"task": "regression"},
    },
    "s.yaml",
)


def rows(n: int, seed: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, n)
    z = rng.normal(0, 1, n)
    prediction = 2 * x
    target = prediction + rng.normal(0, 0.1 + x, n)  # noisier as x grows
    return np.column_stack([x, z]), prediction, target


def test_estimated_errors_track_realised_ones_as_the_inputs_move(tmp_path: Path) -> None:
    features, prediction, target = rows(20_000, 0, 0.0, 2.0)
    data = tmp_path / "train.csv"
    lines = ["x,z,prediction,label"] + [
        f"{a},{b},{p},{t}" for (a, b), p, t in zip(features, prediction, target, strict=True)
    ]
    data.write_text("\n".join(lines) + "\n")
    baseline = build_baseline(SCHEMA, data, prediction_column="prediction", label_column="label")
    assert baseline.reference is not None and baseline.reference.task == "regression"
    model = fit_direct_loss(baseline.reference, baseline)
    assert isinstance(model, DirectLossModel)
    for low, high in ((0.0, 2.0), (1.5, 2.0)):  # the second: the noisy end only
        live, live_prediction, live_target = rows(5000, 1, low, high)
        estimate = model.estimate(live, live_prediction)
        errors = live_prediction - live_target
        mae, rmse = estimate.metric("mae"), estimate.metric("rmse")
        assert mae is not None and rmse is not None
        assert mae.value == pytest.approx(np.mean(np.abs(errors)), rel=0.08)
        assert rmse.value == pytest.approx(math.sqrt(np.mean(errors**2)), rel=0.08)
        assert mae.alert == (low > 0)


def test_no_prediction_gives_a_reason(tmp_path: Path) -> None:
    features, prediction, target = rows(500, 0, 0.0, 2.0)
    data = tmp_path / "train.csv"
    lines = ["x,z,prediction,label"] + [
        f"{a},{b},{p},{t}" for (a, b), p, t in zip(features, prediction, target, strict=True)
    ]
    data.write_text("\n".join(lines) + "\n")
    baseline = build_baseline(SCHEMA, data, prediction_column="prediction", label_column="label")
    assert baseline.reference is not None
    model = fit_direct_loss(baseline.reference, baseline)
    assert isinstance(model, DirectLossModel)
    estimate = model.estimate(features[:10], np.full(10, np.nan))
    assert estimate.metrics == () and "prediction" in estimate.reason
