"""Direct loss estimation (NannyML's DLE) for regressions, with numpy alone.

A small model learns, on the reference rows, each row's absolute error and squared
error from its features and its prediction; a window's MAE is then the mean predicted
absolute error of its rows, its RMSE the root of the mean predicted squared error.
NannyML fits gradient-boosted trees; scikit-learn is not a runtime dependency here, so
the model is ridge regression on an additive one-hot encoding: each numeric feature by
the baseline's quantile bins (plus a missing bin), the prediction by ten quantile bins
of the reference's predictions. Every bin gets its own error level, so errors that grow
in one region of a feature (or of the prediction) are learned, interactions between
features are not. Predictions below 0 are clipped to 0.

The window's rows are its row sample (numeric features and the prediction of each,
`WindowSummary.row_predictions`); rows without a prediction are left out. As CBPE, it
assumes the errors depend on the inputs as they did in training (no concept drift).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exporter.features.table import FloatArray
from stats_service.baseline.contents import Baseline, NumericFeatureBaseline
from stats_service.baseline.reference import ReferenceRows
from stats_service.checks.estimation.bands import Band, judged, reference_bands
from stats_service.checks.results import EstimatedPerformance

PREDICTION_BINS = 10
RIDGE = 1.0
MIN_ROWS = 50

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class _Encoding:
    columns: tuple[str, ...]  # reference feature columns, in the row sample's order
    edges: tuple[FloatArray, ...]  # per column: the baseline's edges
    prediction_edges: FloatArray

    @property
    def width(self) -> int:
        return 1 + sum(len(e) for e in self.edges) + len(self.prediction_edges)

    def encode(self, features: FloatArray, prediction: FloatArray) -> FloatArray:
        """One row per input: intercept, then each block's one-hot bin (last: missing)."""
        n = len(prediction)
        x = np.zeros((n, self.width))
        x[:, 0] = 1.0
        offset = 1
        blocks = [*zip(self.edges, features.T, strict=True), (self.prediction_edges, prediction)]
        for edges, values in blocks:
            bins = len(edges)  # len(edges) - 1 bins, then the missing one
            which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 2)
            which = np.where(np.isnan(values), bins - 1, which)
            x[np.arange(n), offset + which] = 1.0
            offset += bins
        return x


@dataclass(frozen=True, eq=False)
class DirectLossModel:
    encoding: _Encoding
    row_columns: tuple[str, ...]  # the row sample's columns (what a window gives)
    absolute: FloatArray  # ridge coefficients
    squared: FloatArray
    bands: Mapping[str, Band]
    thresholds: Mapping[str, float]

    def estimate(self, rows: FloatArray, predictions: FloatArray) -> EstimatedPerformance:
        rows = np.asarray(rows, dtype=np.float64)
        used = np.isfinite(predictions) if len(predictions) == len(rows) else np.zeros(0, bool)
        if not used.any():
            return EstimatedPerformance(
                task="regression",
                method="direct_loss",
                samples=0,
                reason="no row of the window's sample carries a prediction value",
            )
        picked = [self.row_columns.index(name) for name in self.encoding.columns]
        x = self.encoding.encode(rows[used][:, picked], predictions[used])
        mae = float(np.mean(np.maximum(x @ self.absolute, 0.0)))
        rmse = math.sqrt(float(np.mean(np.maximum(x @ self.squared, 0.0))))
        samples = int(np.count_nonzero(used))
        return EstimatedPerformance(
            task="regression",
            method="direct_loss",
            samples=samples,
            metrics=judged({"mae": mae, "rmse": rmse}, self.bands, samples, self.thresholds),
        )


def fit_direct_loss(
    reference: ReferenceRows,
    baseline: Baseline,
    *,
    thresholds: Mapping[str, float] | None = None,
    seed: int = 0,
) -> DirectLossModel | str:
    """The model fitted on `reference`, or why none can be (a sentence)."""
    error = reference.prediction - reference.target
    used = np.isfinite(error)
    if np.count_nonzero(used) < MIN_ROWS:
        return f"fewer than {MIN_ROWS} reference rows with a prediction and a target"
    numeric = {f.name: f for f in baseline.features if isinstance(f, NumericFeatureBaseline)}
    columns = tuple(name for name in reference.feature_columns if name in numeric)
    edges = tuple(np.asarray(numeric[name].edges, dtype=np.float64) for name in columns)
    prediction = reference.prediction[used]
    quantiles = np.quantile(prediction, np.linspace(0, 1, PREDICTION_BINS + 1)[1:-1])
    encoding = _Encoding(
        columns=columns,
        edges=edges,
        prediction_edges=np.array([-np.inf, *np.unique(quantiles), np.inf]),
    )
    picked = [reference.feature_columns.index(name) for name in columns]
    x = encoding.encode(reference.features[used][:, picked], prediction)
    errors = error[used]
    absolute, squared = np.abs(errors), errors * errors

    def realised(rows: IntArray) -> Mapping[str, float]:
        return {
            "mae": float(np.mean(absolute[rows])),
            "rmse": math.sqrt(float(np.mean(squared[rows]))),
        }

    return DirectLossModel(
        encoding=encoding,
        row_columns=baseline.row_sample.columns,
        absolute=_ridge(x, absolute),
        squared=_ridge(x, squared),
        bands=reference_bands(realised, len(errors), seed=seed, upper_limit=None),
        thresholds=dict(thresholds or {}),
    )


def _ridge(x: FloatArray, y: FloatArray) -> FloatArray:
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    return np.asarray(np.linalg.solve(x.T @ x + penalty, x.T @ y), dtype=np.float64)
