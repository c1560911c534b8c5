"""Confidence-based performance estimation (CBPE, NannyML's method) for classifiers.

A calibrated probability is the chance the row belongs to the class, so without labels
the confusion matrix can still be filled in expectation: a row predicted positive with
calibrated positive probability p adds p to the true positives and 1 - p to the false
positives; a row predicted negative adds p to the false negatives and 1 - p to the true
negatives. Accuracy, precision, recall and F1 follow from these expected counts.
ROC AUC: the rows ranked by the model's raw score; at each distinct score, the expected
true and false positives above it give one point of the ROC curve; the area is by
trapezoids, as over a realised curve. Multiclass: each class one-vs-rest, calibrated
on its own, the calibrated rows divided by their sum; accuracy is the mean calibrated
probability of the predicted class; precision, recall, F1 and ROC AUC are the macro
averages of the classes' one-vs-rest estimates.

Fitted once per model (`fit_cbpe`) on the baseline's reference rows: the calibration
(`estimation.calibration`, isotonic or Platt, only where it lowers the calibration
error) and the bands (`estimation.bands`: the realised metric on the reference and its
sampling error). It assumes what NannyML assumes: the probabilities stay calibrated
under the shift (covariate shift, no concept drift).

A window's rows (`WindowSummary.predictions`), per row: the probabilities of the
reference's classes (binary: the positive class's, else derived from the logged
label and its confidence as `checks.performance` does), and the predicted label (the
logged one, else the threshold or the largest probability). Rows are left out, and
counted in the result's notes, when they carry no probability, a probability for a
class the reference never saw, or a predicted label the reference never saw. Rows whose
probabilities do not sum to one are divided by their sum (noted). No usable row gives
a result without metrics and with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from exporter.features.table import BoolArray, FloatArray
from stats_service.baseline.reference import ReferenceRows
from stats_service.baseline.task_inference import canonical_label
from stats_service.checks.classification import normalised
from stats_service.checks.estimation.bands import Band, judged, reference_bands
from stats_service.checks.estimation.calibration import (
    CalibrationMethod,
    Calibrator,
    choose_calibrator,
)
from stats_service.checks.performance import DEFAULT_THRESHOLD, positive_probability
from stats_service.checks.results import EstimatedPerformance
from stats_service.windows.summary import PredictionRows

IntArray = npt.NDArray[np.intp]
# A row's probabilities off their sum of one by more than this are renormalised (noted).
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class CbpeModel:
    task: str  # binary | multiclass
    classes: tuple[str, ...]  # binary: (negative, positive)
    calibrators: tuple[Calibrator, ...]  # one per class (binary: the positive class only)
    calibration: str  # what was decided, per class
    threshold: float
    bands: Mapping[str, Band]
    thresholds: Mapping[str, float]  # configured floors per metric

    def estimate(self, predictions: PredictionRows) -> EstimatedPerformance:
        raw, predicted, notes = self._rows(predictions)
        if len(predicted) == 0:
            reason = "no row of the window carries the probabilities of its classes"
            return self._empty(reason, notes)
        calibrated = self._calibrated(raw)
        metrics = estimate_metrics(self.task, raw, calibrated, predicted)
        # The band is set at the window's size; rows beyond the sample cap count too.
        rows = round(len(predicted) * predictions.rows / max(predictions.count, 1))
        return EstimatedPerformance(
            task=self.task,
            method="cbpe",
            samples=rows,
            metrics=judged(metrics, self.bands, rows, self.thresholds),
            calibration=self.calibration,
            notes=notes,
        )

    def _empty(self, reason: str, notes: tuple[str, ...] = ()) -> EstimatedPerformance:
        return EstimatedPerformance(
            task=self.task,
            method="cbpe",
            samples=0,
            calibration=self.calibration,
            reason=reason,
            notes=notes,
        )

    def _calibrated(self, raw: FloatArray) -> FloatArray:
        if self.task == "binary":
            positive = self.calibrators[0].apply(raw[:, 1])
            return np.column_stack([1.0 - positive, positive])
        columns = [c.apply(raw[:, j]) for j, c in enumerate(self.calibrators)]
        return normalised(np.column_stack(columns))

    def _rows(self, rows: PredictionRows) -> tuple[FloatArray, IntArray, tuple[str, ...]]:
        """The usable rows' raw probabilities (n x classes) and predicted class codes."""
        n = rows.count
        probabilities = {canonical_label(k) or k: v for k, v in rows.probabilities.items()}
        labels = [None if v is None else canonical_label(v) for v in rows.label]
        code = {name: i for i, name in enumerate(self.classes)}
        notes: list[str] = []
        unseen = sorted(set(probabilities) - set(code))
        left_out = np.zeros(n, dtype=bool)
        for name in unseen:
            carries = np.asarray(np.nan_to_num(probabilities[name]) > 0, dtype=bool)
            if carries.any():
                notes.append(
                    f"{int(carries.sum())} rows give a probability to {name!r}, "
                    "a class the baseline never saw: left out"
                )
                left_out |= carries
        if self.task == "binary":
            raw = self._binary_raw(rows, probabilities, labels)
        else:
            nan = np.full(n, np.nan)
            raw = np.column_stack([probabilities.get(name, nan) for name in self.classes])
        with np.errstate(invalid="ignore"):
            in_range = np.asarray((raw >= 0) & (raw <= 1), dtype=bool).all(axis=1)
        valid = np.asarray(np.isfinite(raw).all(axis=1) & in_range, dtype=bool)
        missing = int(np.count_nonzero(~valid))
        if missing:
            notes.append(f"{missing} rows without usable probabilities: left out")
        predicted = np.full(n, -1, dtype=np.intp)
        unknown = 0
        for i, label in enumerate(labels):
            if label is not None:
                if label in code:
                    predicted[i] = code[label]
                else:
                    unknown += 1
            elif valid[i]:
                predicted[i] = self._predicted_from(raw[i])
        if unknown:
            notes.append(f"{unknown} rows predict a label the baseline never saw: left out")
        keep = valid & (predicted >= 0) & ~left_out
        raw = raw[keep]
        if self.task == "multiclass" and len(raw):
            off = np.abs(raw.sum(axis=1) - 1.0) > SUM_TOLERANCE
            if off.any():
                notes.append(f"{int(off.sum())} rows' probabilities do not sum to 1: normalised")
                raw = normalised(raw)
        return raw, predicted[keep], tuple(notes)

    def _binary_raw(
        self,
        rows: PredictionRows,
        probabilities: Mapping[str, FloatArray],
        labels: list[str | None],
    ) -> FloatArray:
        positive = self.classes[1]
        given = probabilities.get(positive)
        if given is None and self.classes[0] in probabilities:
            given = 1.0 - probabilities[self.classes[0]]
        derived = positive_probability(labels, rows.value, rows.score, positive)
        p = derived if given is None else np.where(np.isnan(given), derived, given)
        return np.column_stack([1.0 - p, p])

    def _predicted_from(self, row: FloatArray) -> int:
        if self.task == "binary":
            return int(row[1] >= self.threshold)
        return int(np.argmax(row))


def fit_cbpe(
    reference: ReferenceRows,
    *,
    method: CalibrationMethod = "isotonic",
    threshold: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    seed: int = 0,
) -> CbpeModel | str:
    """The model fitted on `reference`, or why none can be (a sentence)."""
    classes = reference.classes
    cutoff = DEFAULT_THRESHOLD if threshold is None else threshold
    shell = CbpeModel(reference.task, classes, (), "", cutoff, {}, dict(thresholds or {}))
    probabilities = reference.probabilities
    code = {name: i for i, name in enumerate(classes)}
    usable = np.isfinite(probabilities).all(axis=1) & np.array(
        [t in code for t in reference.truth], dtype=bool
    )
    if not usable.any():
        return "the reference rows carry no probability for every class"
    raw = probabilities[usable]
    truth = np.array([code[t] for t, ok in zip(reference.truth, usable, strict=True) if ok])
    predicted = np.array(
        [
            code[p] if p in code else shell._predicted_from(row)
            for p, row in zip(
                [p for p, ok in zip(reference.predicted, usable, strict=True) if ok],
                raw,
                strict=True,
            )
        ],
        dtype=np.intp,
    )
    if reference.task == "multiclass":
        raw = normalised(raw)
    calibrators, decisions = _calibrators(reference.task, classes, raw, truth, method, seed)
    realised = _realised(reference.task, truth, predicted, raw)
    bands = reference_bands(realised, len(truth), seed=seed)
    return replace(shell, calibrators=calibrators, calibration="; ".join(decisions), bands=bands)


def _calibrators(
    task: str,
    classes: Sequence[str],
    raw: FloatArray,
    truth: IntArray,
    method: CalibrationMethod,
    seed: int,
) -> tuple[tuple[Calibrator, ...], list[str]]:
    which = [1] if task == "binary" else list(range(len(classes)))
    calibrators: list[Calibrator] = []
    decisions: list[str] = []
    for j in which:
        calibrator, why = choose_calibrator(raw[:, j], truth == j, method, seed)
        calibrators.append(calibrator)
        decisions.append(f"{classes[j]}: {why}")
    return tuple(calibrators), decisions


def _realised(
    task: str, truth: IntArray, predicted: IntArray, raw: FloatArray
) -> Callable[[IntArray], Mapping[str, float]]:
    """The realised metrics of the reference rows at some indices (for the bands): the
    same expected-count formulas on one-hot truth are the realised metrics."""
    onehot = np.eye(raw.shape[1])[truth]

    def realised(rows: IntArray) -> Mapping[str, float]:
        return estimate_metrics(task, raw[rows], onehot[rows], predicted[rows])

    return realised


def estimate_metrics(
    task: str, raw: FloatArray, calibrated: FloatArray, predicted: IntArray
) -> dict[str, float]:
    """Expected metrics of rows with raw scores `raw`, class probabilities `calibrated`
    (both n x classes) and predicted codes. With one-hot truth as `calibrated`, these
    are the realised metrics (what the bands are built with)."""
    width = calibrated.shape[1]
    chosen = np.eye(width, dtype=bool)[predicted]
    if task == "binary":
        counts = _expected_counts(calibrated[:, 1], chosen[:, 1])
        metrics = {"accuracy": float(np.mean(calibrated[chosen]))}
        metrics.update(counts)
        auc = expected_roc_auc(raw[:, 1], calibrated[:, 1])
        if auc is not None:
            metrics["roc_auc"] = auc
        return metrics
    per_class = [_expected_counts(calibrated[:, j], chosen[:, j]) for j in range(width)]
    metrics = {"accuracy": float(np.mean(calibrated[chosen]))}
    for name in ("precision", "recall", "f1"):
        metrics[name] = float(np.mean([counts.get(name, 0.0) for counts in per_class]))
    aucs = [expected_roc_auc(raw[:, j], calibrated[:, j]) for j in range(width)]
    defined = [auc for auc in aucs if auc is not None]
    if defined:
        metrics["roc_auc"] = float(np.mean(defined))
    return metrics


def _expected_counts(p: FloatArray, predicted: BoolArray) -> dict[str, float]:
    tp = float(p[predicted].sum())
    fp = float((1.0 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    metrics: dict[str, float] = {}
    if tp + fp > 0:
        metrics["precision"] = tp / (tp + fp)
    if tp + fn > 0:
        metrics["recall"] = tp / (tp + fn)
    if 2 * tp + fp + fn > 0:
        metrics["f1"] = 2 * tp / (2 * tp + fp + fn)
    return metrics


def expected_roc_auc(score: FloatArray, p: FloatArray) -> float | None:
    """Area under the ROC curve whose points are expected counts above each distinct
    score; None without expected positives or negatives. With p in {0, 1} it is the
    realised ROC AUC (ties count one half)."""
    positives, negatives = float(p.sum()), float((1.0 - p).sum())
    if positives <= 0.0 or negatives <= 0.0:
        return None
    order = np.argsort(-score, kind="stable")
    ranked, weights = score[order], p[order]
    last = np.flatnonzero(np.diff(ranked) != 0)
    ends = np.append(last, len(ranked) - 1)  # the last row of each distinct score
    tp = np.cumsum(weights)[ends]
    fp = np.cumsum(1.0 - weights)[ends]
    tpr = np.concatenate(([0.0], tp / positives))
    fpr = np.concatenate(([0.0], fp / negatives))
    return float(np.trapezoid(tpr, fpr))
