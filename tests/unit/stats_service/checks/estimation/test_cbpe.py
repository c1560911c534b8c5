"""CBPE on synthetic data whose labels are drawn from the probabilities (so the
estimate must match the realised metrics up to sampling error), with metrics compared
with scikit-learn, and the edge cases that must give a reason, never NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from stats_service.baseline.reference import ReferenceRows
from stats_service.checks.estimation.cbpe import CbpeModel, expected_roc_auc, fit_cbpe
from stats_service.windows.summary import PredictionRows

CLASSES = ("a", "b", "c")


def binary_rows(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Positive probabilities (more uncertain ones with `shift`) and labels drawn from
    them: the probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.beta(0.6, 0.6, n) * (1 - shift) + shift / 2, 0, 1)
    return p, rng.random(n) < p


def multiclass_rows(n: int, seed: int, sharpness: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, sharpness, (n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return p, np.minimum(truth, 2)


def binary_model() -> CbpeModel:
    p, y = binary_rows(10_000, 0)
    reference = ReferenceRows(
        task="binary",
        rows_seen=10_000,
        classes=("0", "1"),
        truth=tuple("1" if v else "0" for v in y),
        predicted=(None,) * 10_000,
        probabilities=np.column_stack([1 - p, p]),
    )
    model = fit_cbpe(reference)
    assert isinstance(model, CbpeModel)
    return model


def window(p: np.ndarray, labels: tuple[str | None, ...] | None = None) -> PredictionRows:
    n = len(p)
    return PredictionRows(
        rows=n,
        value=np.full(n, np.nan),
        label=labels if labels is not None else (None,) * n,
        score=np.full(n, np.nan),
        probabilities={"1": p},
    )


def test_expected_roc_auc_of_one_hot_truth_is_sklearns() -> None:
    rng = np.random.default_rng(4)
    score = np.round(rng.random(500), 1)  # many ties
    truth = rng.random(500) < score
    assert expected_roc_auc(score, truth.astype(float)) == pytest.approx(
        roc_auc_score(truth, score)
    )


def test_binary_estimate_tracks_the_realised_metrics_under_covariate_shift() -> None:
    model = binary_model()
    for shift in (0.0, 0.6):  # the second: far less confident rows, a real drop
        p, y = binary_rows(5000, 7, shift)
        estimate = model.estimate(window(p))
        predicted = p >= 0.5
        accuracy = estimate.metric("accuracy")
        auc = estimate.metric("roc_auc")
        assert accuracy is not None and auc is not None
        assert accuracy.value == pytest.approx(np.mean(predicted == y), abs=0.02)
        assert auc.value == pytest.approx(roc_auc_score(y, p), abs=0.02)
        assert accuracy.alert == (shift > 0)  # the drop leaves the band; no shift stays in


def test_binary_from_logged_label_and_confidence_without_probabilities() -> None:
    model = binary_model()
    p, _ = binary_rows(2000, 8)
    labels = tuple("1" if v >= 0.5 else "0" for v in p)
    rows = PredictionRows(
        rows=2000,
        value=np.full(2000, np.nan),
        label=labels,
        score=np.where(p >= 0.5, p, 1 - p),  # the sidecar's confidence of the label
    )
    assert model.estimate(rows).metric("accuracy") == model.estimate(window(p)).metric("accuracy")


def test_multiclass_estimate_tracks_realised_accuracy() -> None:
    p, truth = multiclass_rows(10_000, 1, sharpness=2.0)
    reference = ReferenceRows(
        task="multiclass",
        rows_seen=10_000,
        classes=CLASSES,
        truth=tuple(CLASSES[t] for t in truth),
        predicted=(None,) * 10_000,
        probabilities=p,
    )
    model = fit_cbpe(reference)
    assert isinstance(model, CbpeModel)
    live, live_truth = multiclass_rows(5000, 2, sharpness=1.0)  # less confident: worse
    rows = PredictionRows(
        rows=5000,
        value=np.full(5000, np.nan),
        label=(None,) * 5000,
        score=np.full(5000, np.nan),
        probabilities={c: live[:, i] for i, c in enumerate(CLASSES)},
    )
    estimate = model.estimate(rows)
    accuracy = estimate.metric("accuracy")
    auc = estimate.metric("roc_auc")
    assert accuracy is not None and auc is not None
    assert accuracy.value == pytest.approx(np.mean(live.argmax(axis=1) == live_truth), abs=0.02)
    assert auc.value == pytest.approx(
        roc_auc_score(live_truth, live, multi_class="ovr", average="macro"), abs=0.02
    )
    assert accuracy.alert


def test_edge_cases_give_reasons_or_notes_never_nan() -> None:
    model = binary_model()
    nothing = model.estimate(window(np.full(50, np.nan)))
    assert nothing.metrics == () and "probabilities" in nothing.reason
    one_class = model.estimate(window(np.full(50, 0.99)))  # every row predicted positive
    assert all(math.isfinite(m.value) for m in one_class.metrics)
    mixed = window(np.array([0.9, 0.2, np.nan, 0.7]), ("1", "0", None, "maybe"))
    estimate = model.estimate(mixed)
    assert estimate.samples == 2
    assert any("never saw" in note for note in estimate.notes)
    assert any("without usable probabilities" in note for note in estimate.notes)


def test_multiclass_unnormalised_and_unseen_classes_are_noted() -> None:
    p, truth = multiclass_rows(3000, 3, sharpness=2.0)
    reference = ReferenceRows(
        task="multiclass",
        rows_seen=3000,
        classes=CLASSES,
        truth=tuple(CLASSES[t] for t in truth),
        predicted=(None,) * 3000,
        probabilities=p,
    )
    model = fit_cbpe(reference)
    assert isinstance(model, CbpeModel)
    rows = PredictionRows(
        rows=3,
        value=np.full(3, np.nan),
        label=(None,) * 3,
        score=np.full(3, np.nan),
        probabilities={
            "a": np.array([1.6, 0.1, 0.2]),  # 1.6 is no probability: that row is left out
            "b": np.array([0.2, 0.3, 0.2]),
            "c": np.array([0.2, 0.3, 0.2]),
            "d": np.array([0.0, 0.0, 0.4]),  # a class the baseline never saw
        },
    )
    estimate = model.estimate(rows)
    assert estimate.samples == 1
    assert any("do not sum to 1" in note for note in estimate.notes)
    assert any("'d'" in note for note in estimate.notes)
    assert all(math.isfinite(m.value) for m in estimate.metrics)
