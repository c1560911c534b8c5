"""What a window read from SQLite (or a data file) gives the estimation: every row's
prediction (`PredictionRows`, a uniform sample beyond PREDICTION_CAP), the prediction
of each row-sample row, and the probabilities and label delays of the labelled rows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from exporter.store.sqlite.read import Window, decode_probabilities
from stats_service.baseline.contents import Baseline, CategoricalFeatureBaseline
from stats_service.windows.summary import PREDICTION_CAP, FloatArray, PredictionRows

IntArray = npt.NDArray[np.intp]


def is_classifier(baseline: Baseline) -> bool:
    """Whether a window's per-class probabilities can serve (CBPE, realised ROC AUC and
    log loss): other models' reads skip them."""
    spec = baseline.schema.prediction
    reference = baseline.reference
    return (
        (spec is not None and spec.task != "regression")
        or (reference is not None and reference.task != "regression")
        or isinstance(baseline.prediction, CategoricalFeatureBaseline)
    )


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
        probabilities=probabilities_at(window, rows),
    )


def row_predictions(window: Window, cap: int) -> FloatArray:
    """The prediction value of each row of the row sample drawn with the same `cap`."""
    return np.asarray(window.prediction_value[sample_indices(window.count, cap)], np.float64)


def label_delays(window: Window, which: IntArray) -> FloatArray:
    """Seconds from each of the rows `which` to its label's arrival: clipped at 0 (a
    label posted with a timestamp before its record's, or clocks apart), NaN where the
    store did not keep when it came. Empty when the window carries no arrival times."""
    if window.label_ts is None:
        return np.empty(0)
    with np.errstate(invalid="ignore"):  # NaN stays NaN
        return np.maximum(window.label_ts[which] - window.timestamps[which], 0.0)


def probabilities_at(window: Window, rows: IntArray) -> dict[str, FloatArray]:
    """Class -> the probabilities of the rows `rows`: decoded from the stored texts of
    those rows alone (a SQLite read), else taken from the columns (a data file)."""
    if window.probability_texts:
        texts = window.probability_texts
        decoded = decode_probabilities([texts[i] for i in rows.tolist()])
        return {name: np.asarray(column, np.float64) for name, column in decoded.items()}
    return {
        name: np.asarray(column[rows], np.float64) for name, column in window.probabilities.items()
    }
