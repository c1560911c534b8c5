"""Labelled reference rows kept in a baseline, for estimating performance without labels.

A uniform sample (reservoir, deterministic) of up to `REFERENCE_ROWS` training rows that
have a label:
- classifiers: the label, the predicted label (None: derived from the probabilities),
  and one probability per class, read from the columns `proba_<class>` (the convention of
  `mlmon-stats baseline` and `report`; `PROBABILITY_PREFIX`). A binary model may give its
  positive class's column alone: the negative class's is its complement;
- regressions: the target, the prediction, and the numeric features (the row sample's
  columns) of the same row, which the direct-loss model learns the errors from.

A baseline without them (built before this format, or without a label column) loads as
before and simply has no estimate: the estimate says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporter.features.table import FloatArray, RawColumn
from stats_service.baseline.sketches import ReservoirSlots
from stats_service.baseline.task_inference import canonical_label

REFERENCE_ROWS = 10_000
PROBABILITY_PREFIX = "proba_"


def _empty() -> FloatArray:
    return np.empty(0)


@dataclass(frozen=True, eq=False)
class ReferenceRows:
    task: str  # binary | multiclass | regression
    rows_seen: int  # labelled training rows the sample was drawn from
    # Classifiers: probability column order; binary: (negative, positive).
    classes: tuple[str, ...] = ()
    truth: tuple[str, ...] = ()
    predicted: tuple[str | None, ...] = ()
    probabilities: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    # Regressions.
    target: FloatArray = field(default_factory=_empty)
    prediction: FloatArray = field(default_factory=_empty)
    feature_columns: tuple[str, ...] = ()
    features: FloatArray = field(default_factory=lambda: np.empty((0, 0)))

    @property
    def count(self) -> int:
        return len(self.truth) if self.task != "regression" else len(self.target)


def probability_columns(names: Sequence[str], prefix: str = PROBABILITY_PREFIX) -> dict[str, str]:
    """Class -> its probability column, for every column named `<prefix><class>`."""
    return {
        canonical_label(name[len(prefix) :]) or name[len(prefix) :]: name
        for name in names
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def column_values(column: RawColumn, n_rows: int) -> list[Any]:
    """A raw column as Python values, None where absent or NaN."""
    if isinstance(column.values, np.ndarray):
        values = column.values.tolist()
    else:
        values = list(column.values[:n_rows])
    present = column.present_mask(n_rows)
    return [
        None if not present[i] or (isinstance(v, float) and math.isnan(v)) else v
        for i, v in enumerate(values)
    ]


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


class ReferenceSampler:
    """Accumulates the labelled rows of a baseline build, chunk by chunk."""

    def __init__(
        self,
        task: str,
        classes: Sequence[str],
        probability_columns: Mapping[str, str],
        feature_columns: Sequence[str],
        capacity: int = REFERENCE_ROWS,
    ) -> None:
        self.task = task
        self.declared = tuple(classes)
        self.probability_columns = dict(probability_columns)
        self.feature_columns = tuple(feature_columns)
        self.capacity = capacity
        self._slots = ReservoirSlots(capacity, "reference-rows")
        self._truth: list[Any] = [None] * capacity
        self._predicted: list[Any] = [None] * capacity
        width = len(self.probability_columns)
        self._probabilities = np.full((capacity, width), np.nan)
        self._features = np.full((capacity, len(self.feature_columns)), np.nan)

    def add(
        self,
        truth: Sequence[Any],
        predicted: Sequence[Any],
        probabilities: Mapping[str, Sequence[Any]],
        features: Mapping[str, FloatArray],
    ) -> None:
        labelled = np.array([value is not None for value in truth], dtype=bool)
        which = np.flatnonzero(labelled)
        positions, slots = self._slots.place(len(which))
        rows = which[positions]
        for slot, row in zip(slots.tolist(), rows.tolist(), strict=True):
            self._truth[slot] = truth[row]
            self._predicted[slot] = predicted[row]
        for j, name in enumerate(self.probability_columns.values()):
            column = probabilities[name]
            self._probabilities[slots, j] = [to_float(column[row]) for row in rows.tolist()]
        for j, name in enumerate(self.feature_columns):
            if name in features:
                self._features[slots, j] = features[name][rows]

    def result(self) -> ReferenceRows | None:
        kept = min(self._slots.seen, self.capacity)
        if kept == 0:
            return None
        if self.task == "regression":
            return ReferenceRows(
                task="regression",
                rows_seen=self._slots.seen,
                target=np.array([to_float(v) for v in self._truth[:kept]]),
                prediction=np.array([to_float(v) for v in self._predicted[:kept]]),
                feature_columns=self.feature_columns,
                features=self._features[:kept].copy(),
            )
        if not self.probability_columns:
            return None
        truth = tuple(canonical_label(v) or str(v) for v in self._truth[:kept])
        predicted = tuple(_predicted_label(v) for v in self._predicted[:kept])
        given = tuple(self.probability_columns)
        classes = classifier_classes(self.task, self.declared, given, truth)
        matrix = self._probabilities[:kept]
        columns = []
        for name in classes:
            if name in given:
                columns.append(matrix[:, given.index(name)])
            elif len(classes) == 2 and len(given) == 1:
                columns.append(1.0 - matrix[:, 0])  # the complement of the one given
            else:
                columns.append(np.full(kept, np.nan))
        return ReferenceRows(
            task=self.task,
            rows_seen=self._slots.seen,
            classes=classes,
            truth=truth,
            predicted=predicted,
            probabilities=np.column_stack(columns),
        )


def _predicted_label(value: Any) -> str | None:
    return None if value is None else canonical_label(value)


def classifier_classes(
    task: str, declared: Sequence[str], given: Sequence[str], truth: Sequence[str]
) -> tuple[str, ...]:
    """The classes in probability-column order. Binary: (negative, positive), the
    positive class being `performance`'s (the schema's second class; else "1" for 0/1
    labels; else the one class given a column alone; else the greatest)."""
    declared = tuple(canonical_label(c) or c for c in declared)
    if task != "binary":
        return declared or tuple(sorted({*given, *truth}))
    if len(declared) == 2:
        return declared
    seen = sorted({*given, *truth})
    if set(seen) <= {"0", "1"}:
        return ("0", "1")
    positive = given[0] if len(given) == 1 else seen[-1]
    negatives = [c for c in seen if c != positive]
    return (negatives[0] if len(negatives) == 1 else "__other__", positive)


def reference_to_dict(reference: ReferenceRows) -> dict[str, Any]:
    def numbers(values: FloatArray) -> list[Any]:
        return [None if math.isnan(v) else v for v in values.tolist()]

    document: dict[str, Any] = {"task": reference.task, "rows_seen": reference.rows_seen}
    if reference.task == "regression":
        document.update(
            target=numbers(reference.target),
            prediction=numbers(reference.prediction),
            feature_columns=list(reference.feature_columns),
            features=[numbers(row) for row in reference.features],
        )
    else:
        document.update(
            classes=list(reference.classes),
            truth=list(reference.truth),
            predicted=list(reference.predicted),
            probabilities=[numbers(row) for row in reference.probabilities],
        )
    return document
