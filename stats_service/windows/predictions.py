"""What a window read from SQLite (or a data file) gives the estimation: every row's
prediction (`PredictionRows`, a uniform sample beyond PREDICTION_CAP), the prediction
of each row-sample row, and the probabilities of the labelled rows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from exporter.store.sqlite.read import Window
from stats_service.windows.summary import PREDICTION_CAP, FloatArray, PredictionRows

IntArray = npt.NDArray[np.intp]


def sample_indices(count: int, cap: int) -> IntArray:
    """The rows a capped sample keeps: all of them, else `cap` drawn without replacement
    (the same rows every time, in order)."""
    if count <= cap:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, cap, replace=False))


def prediction_rows(window: Window, cap: int = PREDICTION_CAP) -> PredictionRows:
    rows = sample_indices(window.count, cap)
    return PredictionRows(
        rows=window.count,
        value=np.asarray(window.prediction_value[rows], dtype=np.float64),
        label=tuple(window.prediction_label[i] for i in rows.tolist()),
        score=np.asarray(window.prediction_score[rows], dtype=np.float64),
        probabilities={
            name: np.asarray(column[rows], np.float64)
            for name, column in window.probabilities.items()
        },
    )


def row_predictions(window: Window, cap: int) -> FloatArray:
    """The prediction value of each row of the row sample drawn with the same `cap`."""
    return np.asarray(window.prediction_value[sample_indices(window.count, cap)], np.float64)


def labelled_probabilities(window: Window, which: IntArray) -> dict[str, FloatArray]:
    return {
        name: np.asarray(column[which], np.float64) for name, column in window.probabilities.items()
    }
