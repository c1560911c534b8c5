"""Model performance over the rows of a window whose ground truth has arrived.

Which rows count: a row is used when its ground truth is usable (a finite number for
regression; any label for a classifier) and its prediction is there (a finite
`predicted_value` for regression; a predicted label, or for a binary task one derived
from a probability, for a classifier). Other rows are skipped: `samples` counts the rows
used, so `labelled.count - samples` were skipped. No labelled row at all gives None;
labelled rows none of which is usable give a result with 0 samples and no metric.

Labels (classifiers) are compared as canonical strings, the same for ground truth,
predicted labels and the schema's classes, because one label reaches us in several
spellings (a posted `true` reads back from SQLite as 1; a label 1.0 is "1.0" once made
a string): booleans and the texts "true"/"false" (any case) are "1"/"0"; numbers, and
texts that read as a finite number, are the shortest form of that number ("1", "2.5");
other texts are kept as they are. So classes "true" and "1" would be one class.

Binary tasks: the positive class is `spec.classes[1]` when the classes are given;
otherwise "1" when every label seen is "0" or "1" (the sidecar's default class names,
and booleans), else the greatest label seen in sorted order (scikit-learn's convention).
Every other label is the negative class. Precision, recall and F1 are those of the
positive class, each absent when its denominator is 0 (no positive predicted; no
positive in the truth; neither): a perfect all-negative window is not a 0 F1.

The positive-class probability of a row, for ROC AUC and log loss, comes from what the
sidecar logs (`exporter.analysis.protocols.base.Prediction`): `score` is the confidence of the
predicted label, so with a label it is the probability of that label (p = score for the
positive class, 1 - score otherwise); failing that, `predicted_value` (for a binary
model, the positive-class score); failing that, without a label, `score` itself is read
as the positive-class probability. Without a label, the predicted label is positive when
p >= `spec.threshold` (0.5 when unset), the sidecar's rule. Only values in [0, 1] are
probabilities. ROC AUC and log loss are reported when every used row has one (so that
every metric is over the same rows), ROC AUC only when both classes are in the truth.
Log loss clips p to [eps, 1 - eps] (eps of float64), as scikit-learn does.

When the model returned a probability per class (`Labelled.probabilities`), a binary
task takes the positive class's from there first.

Multiclass (`checks.classification`): accuracy; precision, recall and F1 macro-averaged
over the classes present in the truth or the predictions (a class the model never
predicts has precision 0, one never true recall 0: scikit-learn's `average="macro",
zero_division=0`), `f1_macro` (= `f1`) and `f1_weighted`; `precision_<class>` and
`recall_<class>` for the schema's classes only (so their number is bounded); and, when
every used row carries a probability for every class of the list (the schema's classes,
else those seen), one-vs-rest ROC AUC and log loss. A predicted label missing for a row
is taken from an integral `predicted_value` as a class index (into `spec.classes` when
given), as the sidecar does. Classifiers also get the confusion matrix (truth by
prediction; a binary task's is negative/positive).

Regression: MAE and RMSE of `predicted_value` against the numeric truth (booleans are
0/1, texts are read as numbers).

Without a spec the task is inferred from the rows' ground truth and predictions (a row's
predicted label, else its predicted value) by `stats_service.baseline.task_inference`, the rules
`infer-schema` writes a schema's `prediction:` section with: so probabilities against 0/1
labels are a binary task (threshold 0.5), not a regression. No prediction in any row (a
score alone is a confidence, not a prediction) gives None. The result says where its task
came from (`task_source`: "schema" or "inferred") and, when inferred, why (`task_reason`).
Declare the task in the schema to avoid guessing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from exporter.features.table import BoolArray, FloatArray
from exporter.records import LabelValue
from exporter.schema import PredictionSpec
from stats_service.baseline.task_inference import canonical_label, infer_task
from stats_service.checks.classification import (
    binary_roc_auc,
    confusion_matrix,
    count_metrics,
    log_loss,
    per_class_metrics,
    roc_auc_ovr,
)
from stats_service.checks.results import PerformanceResult
from stats_service.windows.summary import Labelled

__all__ = ["canonical_label", "evaluate_performance", "positive_probability"]

_EPS = float(np.finfo(np.float64).eps)
DEFAULT_THRESHOLD = 0.5


def evaluate_performance(
    spec: PredictionSpec | None, labelled: Labelled
) -> PerformanceResult | None:
    """Metrics over `labelled` for the task of `spec`, inferred without one (see the
    module docstring)."""
    count = labelled.count
    if count == 0:
        return None
    values = _aligned_floats(labelled.predicted_value, count, "predicted_value")
    scores = _aligned_floats(labelled.score, count, "score")
    labels = _aligned_labels(labelled.predicted_label, count)
    probabilities = _aligned_probabilities(labelled.probabilities, count)
    if spec is not None:
        return _evaluate(spec, labelled.truth, labels, values, scores, probabilities)
    predictions = [
        label if label is not None else (None if math.isnan(value) else value)
        for label, value in zip(labels, values.tolist(), strict=True)
    ]
    if all(prediction is None for prediction in predictions):
        return None
    inferred = infer_task(labelled.truth, predictions)
    if inferred.spec is None:
        return None
    result = _evaluate(inferred.spec, labelled.truth, labels, values, scores, probabilities)
    return dataclasses.replace(result, task_source="inferred", task_reason=inferred.reason)


def _evaluate(
    spec: PredictionSpec,
    truth: Sequence[LabelValue],
    labels: list[str | None],
    values: FloatArray,
    scores: FloatArray,
    probabilities: dict[str, FloatArray],
) -> PerformanceResult:
    if spec.task == "regression":
        return _regression(truth, values)
    classes = tuple(canonical_label(c) or c for c in spec.classes)
    if spec.task == "binary":
        return _binary(truth, labels, values, scores, probabilities, classes, spec.threshold)
    return _multiclass(truth, labels, values, probabilities, classes)


def _aligned_floats(values: FloatArray, count: int, name: str) -> FloatArray:
    # An empty array means the store did not read the field: none for every row.
    if len(values) == 0:
        return np.full(count, np.nan)
    if len(values) != count:
        raise ValueError(f"labelled.{name} has {len(values)} values for {count} rows")
    return np.asarray(values, dtype=np.float64)


def _aligned_probabilities(
    probabilities: Mapping[str, FloatArray], count: int
) -> dict[str, FloatArray]:
    aligned: dict[str, FloatArray] = {}
    for name, column in probabilities.items():
        if len(column) != count:
            raise ValueError(f"labelled.probabilities[{name!r}] has {len(column)} values")
        aligned[canonical_label(name) or name] = np.asarray(column, dtype=np.float64)
    return aligned


def _aligned_labels(labels: Sequence[str | None], count: int) -> list[str | None]:
    if len(labels) == 0:
        return [None] * count
    if len(labels) != count:
        raise ValueError(f"labelled.predicted_label has {len(labels)} values for {count} rows")
    return [canonical_label(label) for label in labels]


def _regression(truth: Sequence[LabelValue], values: FloatArray) -> PerformanceResult:
    actual = np.fromiter(map(_truth_number, truth), dtype=np.float64, count=len(truth))
    used = np.isfinite(actual) & np.isfinite(values)
    errors = values[used] - actual[used]
    metrics: dict[str, float] = {}
    if len(errors):
        metrics["mae"] = float(np.mean(np.abs(errors)))
        metrics["rmse"] = math.sqrt(float(np.mean(errors * errors)))
    return PerformanceResult(task="regression", samples=len(errors), metrics=metrics)


def _truth_number(value: LabelValue) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return float(value)


def _binary(
    truth: Sequence[LabelValue],
    labels: list[str | None],
    values: FloatArray,
    scores: FloatArray,
    probabilities: dict[str, FloatArray],
    classes: tuple[str, ...],
    threshold: float | None,
) -> PerformanceResult:
    actual = [canonical_label(value) for value in truth]
    positive = _positive_class(classes, actual, labels)
    cutoff = DEFAULT_THRESHOLD if threshold is None else threshold
    probability = positive_probability(labels, values, scores, positive)
    given = probabilities.get(positive)
    if given is not None:
        probability = np.where(_is_probability(given), given, probability)
    used_rows: list[int] = []
    predicted: list[bool] = []
    for i, (true_label, label) in enumerate(zip(actual, labels, strict=True)):
        if true_label is None:
            continue
        if label is not None:
            predicted.append(label == positive)
        elif not math.isnan(probability[i]):
            predicted.append(bool(probability[i] >= cutoff))
        else:
            continue
        used_rows.append(i)
    rows = np.array(used_rows, dtype=np.intp)
    y_true: BoolArray = np.array([actual[i] == positive for i in used_rows], dtype=bool)
    y_pred: BoolArray = np.array(predicted, dtype=bool)
    metrics: dict[str, float] = {}
    confusion = None
    if len(rows):
        metrics.update(_binary_counts_metrics(y_true, y_pred))
        p = probability[rows]
        if not np.isnan(p).any():
            if y_true.any() and not y_true.all():
                metrics["roc_auc"] = binary_roc_auc(y_true, p)
            metrics["log_loss"] = _log_loss(y_true, p)
        negative = _negative_class(classes, actual, labels, positive)
        confusion = confusion_matrix(
            y_true.astype(np.intp), y_pred.astype(np.intp), (negative, positive)
        )
    return PerformanceResult(task="binary", samples=len(rows), metrics=metrics, confusion=confusion)


def _negative_class(
    classes: tuple[str, ...], actual: list[str | None], labels: list[str | None], positive: str
) -> str:
    """The name the negative row of a binary confusion matrix goes by."""
    if len(classes) == 2:
        return classes[0]
    others = {label for label in (*actual, *labels) if label is not None} - {positive}
    if others <= {"0"}:
        return "0"
    return others.pop() if len(others) == 1 else "__other__"


def _positive_class(
    classes: tuple[str, ...], actual: list[str | None], labels: list[str | None]
) -> str:
    if len(classes) == 2:
        return classes[1]
    seen = {label for label in (*actual, *labels) if label is not None}
    if seen <= {"0", "1"}:
        return "1"
    return max(seen)


def positive_probability(
    labels: list[str | None], values: FloatArray, scores: FloatArray, positive: str
) -> FloatArray:
    """Per row, the positive-class probability, NaN when the row does not give one."""
    labelled = np.array([label is not None for label in labels], dtype=bool)
    is_positive = np.array([label == positive for label in labels], dtype=bool)
    score_ok = _is_probability(scores)
    value_ok = _is_probability(values)
    from_label = np.where(is_positive, scores, 1.0 - scores)
    bare_score = np.where(score_ok & ~labelled, scores, np.nan)
    return np.where(labelled & score_ok, from_label, np.where(value_ok, values, bare_score))


def _is_probability(values: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return (values >= 0.0) & (values <= 1.0)


def _binary_counts_metrics(y_true: BoolArray, y_pred: BoolArray) -> dict[str, float]:
    tp = int(np.count_nonzero(y_true & y_pred))
    fp = int(np.count_nonzero(~y_true & y_pred))
    fn = int(np.count_nonzero(y_true & ~y_pred))
    metrics = {"accuracy": float(np.mean(y_true == y_pred))}
    if tp + fp:
        metrics["precision"] = tp / (tp + fp)
    if tp + fn:
        metrics["recall"] = tp / (tp + fn)
    if 2 * tp + fp + fn:
        metrics["f1"] = 2 * tp / (2 * tp + fp + fn)
    return metrics


def _log_loss(y_true: BoolArray, p: FloatArray) -> float:
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(np.where(y_true, np.log(clipped), np.log1p(-clipped))))


def _multiclass(
    truth: Sequence[LabelValue],
    labels: list[str | None],
    values: FloatArray,
    probabilities: dict[str, FloatArray],
    classes: tuple[str, ...],
) -> PerformanceResult:
    pairs: list[tuple[str, str]] = []
    used: list[int] = []
    for i, (true_value, label, value) in enumerate(zip(truth, labels, values, strict=True)):
        true_label = canonical_label(true_value)
        predicted = label if label is not None else _class_from_index(value, classes)
        if true_label is not None and predicted is not None:
            pairs.append((true_label, predicted))
            used.append(i)
    if not pairs:
        return PerformanceResult(task="multiclass", samples=0)
    seen = {name for pair in pairs for name in pair}
    names = list(classes) + sorted(seen - set(classes))
    code = {name: i for i, name in enumerate(names)}
    y_true = np.array([code[t] for t, _ in pairs], dtype=np.intp)
    y_pred = np.array([code[p] for _, p in pairs], dtype=np.intp)
    metrics = count_metrics(y_true, y_pred, len(names))
    metrics.update(per_class_metrics(y_true, y_pred, names, classes))
    scored = names if not classes else list(classes)
    matrix = _probability_matrix(probabilities, scored, np.array(used, dtype=np.intp))
    if matrix is not None and len(scored) == len(names):
        auc = roc_auc_ovr(y_true, matrix)
        if auc is not None:
            metrics["roc_auc"] = auc
        metrics["log_loss"] = log_loss(y_true, matrix)
    return PerformanceResult(
        task="multiclass",
        samples=len(pairs),
        metrics=metrics,
        confusion=confusion_matrix(y_true, y_pred, names),
    )


def _probability_matrix(
    probabilities: dict[str, FloatArray], classes: Sequence[str], rows: npt.NDArray[np.intp]
) -> FloatArray | None:
    """The rows' probabilities in `classes` order; None unless every one is given."""
    if not probabilities or any(name not in probabilities for name in classes):
        return None
    matrix = np.column_stack([probabilities[name][rows] for name in classes])
    if not _is_probability(matrix).all():
        return None
    return matrix


def _class_from_index(value: float, classes: tuple[str, ...]) -> str | None:
    if not (math.isfinite(value) and value.is_integer()):
        return None
    index = int(value)
    return classes[index] if 0 <= index < len(classes) else str(index)
