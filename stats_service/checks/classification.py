"""Realised classification metrics over class codes: what `checks.performance` reports
for more than two classes, and what the estimation's reference bands are computed with.

Inputs are integer codes into a class list (truth and prediction), and optionally one
probability column per class. Conventions, those of scikit-learn:
- precision, recall, F1 per class, 0 where the denominator is 0 (`zero_division=0`);
  macro averages over the classes present in the truth or the predictions, weighted F1
  by each class's support in the truth;
- one-vs-rest ROC AUC: the mean over the classes that are both present and absent in
  the truth (scikit-learn needs every class present; on such data the two agree);
- log loss: each row's probabilities divided by their sum (a model whose row does not
  sum to one is read as its shares), then clipped to [eps, 1 - eps].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from exporter.features.table import BoolArray, FloatArray
from stats_service.checks.results import ConfusionMatrix

IntArray = npt.NDArray[np.intp]
_EPS = float(np.finfo(np.float64).eps)
# Classes in a confusion matrix; the others are pooled as "__other__".
MAX_CONFUSION_CLASSES = 20
OTHER = "__other__"


def count_metrics(y_true: IntArray, y_pred: IntArray, n_classes: int) -> dict[str, float]:
    """Accuracy and the averaged precision, recall and F1 of codes in [0, n_classes)."""
    hit = y_true == y_pred
    tp = np.bincount(y_true[hit], minlength=n_classes).astype(np.float64)
    predicted = np.bincount(y_pred, minlength=n_classes).astype(np.float64)
    support = np.bincount(y_true, minlength=n_classes).astype(np.float64)
    seen = (predicted + support) > 0
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    denominator = predicted + support
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    f1_macro = float(np.mean(f1[seen]))
    return {
        "accuracy": float(np.mean(hit)),
        "precision": float(np.mean(precision[seen])),
        "recall": float(np.mean(recall[seen])),
        "f1": f1_macro,
        "f1_macro": f1_macro,
        "f1_weighted": float(np.sum(f1 * support) / np.sum(support)),
    }


def per_class_metrics(
    y_true: IntArray, y_pred: IntArray, classes: Sequence[str], reported: Sequence[str]
) -> dict[str, float]:
    """precision_<class> and recall_<class> for each of `reported` (bounded by the
    schema's classes), left out where undefined (never predicted; never true)."""
    metrics: dict[str, float] = {}
    for name in reported:
        if name not in classes:
            continue
        code = classes.index(name)
        truth, predicted = y_true == code, y_pred == code
        tp = int(np.count_nonzero(truth & predicted))
        if predicted.any():
            metrics[f"precision_{name}"] = tp / int(np.count_nonzero(predicted))
        if truth.any():
            metrics[f"recall_{name}"] = tp / int(np.count_nonzero(truth))
    return metrics


def binary_roc_auc(y_true: BoolArray, p: FloatArray) -> float:
    """Mann-Whitney U over average ranks: ties between classes count one half. Needs
    both classes in `y_true`."""
    ranks: npt.NDArray[np.float64] = rankdata(p)
    n_pos = int(np.count_nonzero(y_true))
    n_neg = len(y_true) - n_pos
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_ovr(y_true: IntArray, probabilities: FloatArray) -> float | None:
    """Macro one-vs-rest ROC AUC; None when no class is both present and absent."""
    values = [
        binary_roc_auc(y_true == code, probabilities[:, code])
        for code in range(probabilities.shape[1])
        if 0 < np.count_nonzero(y_true == code) < len(y_true)
    ]
    return float(np.mean(values)) if values else None


def normalised(probabilities: FloatArray) -> FloatArray:
    """Rows divided by their sum; a row summing to 0 becomes uniform."""
    totals = probabilities.sum(axis=1, keepdims=True)
    width = probabilities.shape[1]
    uniform = np.full_like(probabilities, 1.0 / max(width, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = np.where(totals > 0, probabilities / totals, uniform)
    return result


def log_loss(y_true: IntArray, probabilities: FloatArray) -> float:
    shares = normalised(probabilities)
    p = np.clip(shares[np.arange(len(y_true)), y_true], _EPS, 1.0 - _EPS)
    return float(-np.mean(np.log(p)))


def confusion_matrix(y_true: IntArray, y_pred: IntArray, classes: Sequence[str]) -> ConfusionMatrix:
    """Truth by prediction; beyond MAX_CONFUSION_CLASSES the least frequent classes
    (truth and predictions together) are pooled as "__other__"."""
    n = len(classes)
    volume = np.bincount(y_true, minlength=n) + np.bincount(y_pred, minlength=n)
    present = [code for code in np.argsort(-volume, kind="stable").tolist() if volume[code]]
    kept = sorted(present[:MAX_CONFUSION_CLASSES], key=lambda code: classes[code])
    names = [classes[code] for code in kept]
    index = np.full(n, len(kept), dtype=np.intp)
    index[kept] = np.arange(len(kept))
    if len(present) > len(kept):
        names.append(OTHER)
    size = len(names)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (index[y_true], index[y_pred]), 1)
    return ConfusionMatrix(
        classes=tuple(names), counts=tuple(tuple(int(c) for c in row) for row in counts)
    )
