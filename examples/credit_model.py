"""The demo's classifier: scikit-learn's LogisticRegression over the credit features.

Encoding, fitted on the training rows only: a missing number (null from a client) takes
the training median, because a serving model must answer rows with gaps, and the
sidecar, not the model, is where missing values get reported; `income` enters as
log1p (it is log-normal); numbers are standardised; `employment` is one-hot over the
training categories, an unseen category encoding as all zeros (scikit-learn's
`handle_unknown="ignore"`), so a new category degrades predictions instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from examples.credit_data import CATEGORICAL, EMPLOYMENT, NUMERIC, FloatArray, Split

_LOG_FEATURES = frozenset({"income"})


@dataclass(frozen=True)
class Evaluation:
    rows: int
    accuracy: float
    roc_auc: float
    default_rate: float
    train_seconds: float


class CreditModel:
    """P(default) for rows given as columns of raw values (see the module docstring).

    `regularization` is scikit-learn's C: the demo's candidate model (the shadow of
    `DEMO_SHADOW=1`) is the same features with a much stronger penalty, so that it agrees
    with the primary on most rows but not all."""

    def __init__(self, train: Split, regularization: float = 1.0) -> None:
        started = time.perf_counter()
        numeric = self._transform(train.numeric)
        self._medians = np.nanmedian(numeric, axis=0)
        self._means = numeric.mean(axis=0)
        stds = numeric.std(axis=0)
        self._scales = np.where(stds > 0, stds, 1.0)
        self._classifier = LogisticRegression(C=regularization, max_iter=1000)
        self._classifier.fit(self._design(train.numeric, train.employment.tolist()), train.label)
        self.train_seconds = time.perf_counter() - started

    def predict_proba(self, numeric: FloatArray, employment: Sequence[str | None]) -> FloatArray:
        """(n, 2) probabilities in CLASSES order: repaid, default. NaN = missing."""
        if len(numeric) == 0:  # scikit-learn refuses an empty batch; the protocol allows it
            return np.empty((0, 2), dtype=np.float64)
        probabilities: FloatArray = self._classifier.predict_proba(
            self._design(numeric, employment)
        )
        return probabilities

    def predict_columns(self, columns: Mapping[str, Sequence[Any]]) -> FloatArray:
        """`predict_proba` for JSON-like columns: numbers or None, category texts or None."""
        numeric = np.array(
            [[np.nan if v is None else float(v) for v in columns[name]] for name in NUMERIC],
            dtype=np.float64,
        ).T.reshape(-1, len(NUMERIC))
        return self.predict_proba(numeric, list(columns[CATEGORICAL]))

    def evaluate(self, held_out: Split) -> Evaluation:
        p_default = self.predict_proba(held_out.numeric, held_out.employment.tolist())[:, 1]
        predicted = (p_default >= 0.5).astype(np.int64)
        return Evaluation(
            rows=len(held_out),
            accuracy=float(np.mean(predicted == held_out.label)),
            roc_auc=float(roc_auc_score(held_out.label, p_default)),
            default_rate=float(np.mean(held_out.label)),
            train_seconds=self.train_seconds,
        )

    def _design(self, numeric: FloatArray, employment: Sequence[str | None]) -> FloatArray:
        values = self._transform(numeric)
        values = np.where(np.isnan(values), self._medians, values)
        scaled = (values - self._means) / self._scales
        categories = np.asarray(employment, dtype=object)
        one_hot = np.column_stack([categories == name for name in EMPLOYMENT]).astype(np.float64)
        return np.hstack([scaled, one_hot.reshape(len(scaled), len(EMPLOYMENT))])

    @staticmethod
    def _transform(numeric: FloatArray) -> FloatArray:
        out = np.array(numeric, dtype=np.float64, copy=True)
        for j, name in enumerate(NUMERIC):
            if name in _LOG_FEATURES:
                # Clipped at 0 so a negative (drifted or bad) income stays finite.
                out[:, j] = np.log1p(np.maximum(out[:, j], 0.0))
        return out
