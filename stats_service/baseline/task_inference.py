"""Which task a model solves, told from its labels and predictions when no schema says so.

Used twice, with the same rules: by `mlmon-stats infer-schema`, to write the schema's
`prediction:` section from the training file's prediction and label columns, and by the
performance check, when a baseline's schema has no `prediction:` section (the result then
says `task_source: inferred` and why). Declaring the task in the schema avoids guessing.

Values are compared as canonical labels (`canonical_label`): booleans and the words
true/false are "1"/"0", numbers and numeric texts their shortest form, other texts as
they are. So a label is a number when its canonical form reads as one. The rules, over
the non-missing values (labels first: they are the ground truth; predictions otherwise):

- some label or prediction is text (not a number): a classifier; binary with up to two
  distinct values (classes: the two, sorted), multiclass beyond (classes listed up to
  MAX_CLASSES distinct values);
- integral labels with at most two distinct values (0/1, booleans, 1/2), with
  predictions in [0, 1] (probabilities) or among the labels' values: binary, classes the
  labels' values sorted as numbers, threshold 0.5;
- integral labels with 3 to MAX_INTEGER_CLASSES distinct values and integral
  predictions (class indexes): multiclass, classes the labels' values;
- any other numeric labels: regression;
- no labels, predictions in [0, 1] that are fractional or only 0/1: binary, threshold
  0.5 (a probability, or a 0/1 decision); other numeric predictions: regression;
- no values at all: nothing to tell (spec None).
Integral labels with more than MAX_INTEGER_CLASSES values are read as a quantity
(regression), as are integral labels whose predictions are fractional (a rating
predicted as 3.7).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.schema import PredictionSpec
from stats_service.checks.results import TaskSource

__all__ = [
    "MAX_CLASSES",
    "MAX_INTEGER_CLASSES",
    "TaskInference",
    "TaskSource",
    "ValueProfile",
    "canonical_label",
    "infer_task",
    "profile",
]

MAX_CLASSES = 50
MAX_INTEGER_CLASSES = 20
THRESHOLD = 0.5
_BOOLEAN_WORDS = {"true": "1", "false": "0"}


@dataclass(frozen=True)
class TaskInference:
    spec: PredictionSpec | None  # None: no value to tell the task from
    reason: str  # for people: what in the values decided it


def canonical_label(value: Any) -> str | None:
    """The one spelling of a label (module docstring); None for no usable label."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    text = value if isinstance(value, str) else str(value)
    word = _BOOLEAN_WORDS.get(text.strip().lower())
    if word is not None:
        return word
    try:
        number = float(text)
    except ValueError:
        return text
    return _number_text(number) if math.isfinite(number) else text


def _number_text(value: float) -> str | None:
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class ValueProfile:
    """What one column's non-missing values look like; `distinct` is bounded."""

    present: int = 0
    text: bool = False  # some value is not a number
    fractional: bool = False  # some number is not integral
    low: float = math.inf
    high: float = -math.inf
    distinct: set[str] = field(default_factory=set)  # at most MAX_CLASSES + 1

    @property
    def in_unit_interval(self) -> bool:
        return self.present > 0 and not self.text and self.low >= 0.0 and self.high <= 1.0

    def add(self, value: Any) -> None:
        label = canonical_label(value)
        if label is None:
            return
        self.present += 1
        if len(self.distinct) <= MAX_CLASSES:
            self.distinct.add(label)
        try:
            number = float(label)
        except ValueError:
            self.text = True
            return
        self.fractional |= not number.is_integer()
        self.low, self.high = min(self.low, number), max(self.high, number)


def profile(values: Iterable[Any]) -> ValueProfile:
    result = ValueProfile()
    for value in values:
        result.add(value)
    return result


def infer_task(labels: Iterable[Any], predictions: Iterable[Any]) -> TaskInference:
    """The task of a model whose ground truth is `labels` and whose outputs are
    `predictions` (either may be empty; None and NaN are missing)."""
    truth, predicted = profile(labels), profile(predictions)
    if truth.present == 0 and predicted.present == 0:
        return TaskInference(None, "no label or prediction values")
    if truth.text or predicted.text:
        return _classifier(truth, predicted)
    if truth.present:
        return _from_numeric_labels(truth, predicted)
    return _from_predictions_alone(predicted)


def _classifier(truth: ValueProfile, predicted: ValueProfile) -> TaskInference:
    # The classes are the labels' values; without labels, the text predictions'.
    source = truth if truth.present else predicted
    values, what = sorted(source.distinct), "labels" if truth.present else "predictions"
    shown = _values_text(values)
    if len(values) <= 2:
        spec = PredictionSpec("binary", tuple(values) if len(values) == 2 else (), None, THRESHOLD)
        return TaskInference(spec, f"text {what} with {len(values)} values ({shown})")
    classes = tuple(values) if len(values) <= MAX_CLASSES else ()
    return TaskInference(
        PredictionSpec("multiclass", classes), f"text {what} with {_count(values)} values ({shown})"
    )


def _from_numeric_labels(truth: ValueProfile, predicted: ValueProfile) -> TaskInference:
    values = sorted(truth.distinct, key=float)
    shown = _values_text(values)
    if not truth.fractional and len(values) <= 2:
        if predicted.present == 0 or predicted.in_unit_interval:
            why = "no predictions" if predicted.present == 0 else "predictions in [0, 1]"
            return _binary(values, f"labels with {len(values)} values ({shown}) and {why}")
        if predicted.distinct <= truth.distinct and not predicted.fractional:
            return _binary(values, f"labels and predictions with the values {shown}")
    elif not truth.fractional and len(values) <= MAX_INTEGER_CLASSES and not predicted.fractional:
        return TaskInference(
            PredictionSpec("multiclass", tuple(values)),
            f"integer labels with {len(values)} values ({shown}) and integer predictions",
        )
    kind = "fractional" if truth.fractional else "integer"
    return TaskInference(
        PredictionSpec("regression"),
        f"{kind} labels with {_count(values)} distinct values"
        + (" and fractional predictions" if predicted.fractional else ""),
    )


def _from_predictions_alone(predicted: ValueProfile) -> TaskInference:
    if predicted.in_unit_interval and (predicted.fractional or predicted.distinct <= {"0", "1"}):
        spec = PredictionSpec("binary", (), None, THRESHOLD)
        return TaskInference(spec, "predictions in [0, 1] and no labels")
    return TaskInference(PredictionSpec("regression"), "numeric predictions and no labels")


def _binary(values: list[str], reason: str) -> TaskInference:
    classes = tuple(values) if len(values) == 2 else ()
    return TaskInference(PredictionSpec("binary", classes, None, THRESHOLD), reason)


def _count(values: list[str]) -> str:
    return f"more than {MAX_CLASSES}" if len(values) > MAX_CLASSES else str(len(values))


def _values_text(values: list[str], shown: int = 5) -> str:
    head = ", ".join(values[:shown])
    return head + (", ..." if len(values) > shown else "")
