"""Model performance over labelled rows, checked against scikit-learn on the same inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    roc_auc_score,
)

from exporter.features.table import FloatArray
from exporter.records import LabelValue
from exporter.schema import PredictionSpec
from stats_service.checks.performance import canonical_label, evaluate_performance
from stats_service.windows.summary import Labelled

BINARY = PredictionSpec(task="binary", classes=("no", "yes"), threshold=0.5)
NAN = math.nan


def labelled(
    truth: Sequence[LabelValue],
    *,
    value: npt.ArrayLike = (),
    label: Sequence[str | None] = (),
    score: npt.ArrayLike = (),
) -> Labelled:
    return Labelled(
        truth=tuple(truth),
        predicted_value=np.array(value, dtype=float),
        predicted_label=tuple(label),
        score=np.array(score, dtype=float),
    )


def binary_case(n: int = 400, seed: int = 5) -> tuple[list[str], FloatArray]:
    """Truth and a positive-class probability that is informative but imperfect."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.35
    p = np.clip(0.35 + 0.3 * (truth - 0.35) + rng.normal(0, 0.2, n), 0, 1)
    p = np.round(p, 2)  # ties, which ROC AUC must count as halves
    return ["yes" if t else "no" for t in truth], p


def sklearn_binary(truth: list[str], p: FloatArray, threshold: float) -> dict[str, float]:
    predicted = np.where(p >= threshold, "yes", "no")
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, pos_label="yes", average="binary"
    )
    y = np.array(truth) == "yes"
    return {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc_score(y, p),
        "log_loss": log_loss(y, p, labels=[False, True]),
    }


def assert_metrics(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.filterwarnings("ignore::FutureWarning")  # log_loss's y_pred renamed in 1.9
def test_binary_from_logged_label_and_confidence() -> None:
    truth, p = binary_case()
    # What the sidecar logs for a binary model: the label from the threshold, the
    # confidence of that label as the score, the positive-class score as the value.
    label = ["yes" if x >= 0.5 else "no" for x in p]
    score = np.where(p >= 0.5, p, 1 - p)
    result = evaluate_performance(BINARY, labelled(truth, value=p, label=label, score=score))
    assert result is not None
    assert (result.task, result.samples) == ("binary", len(truth))
    assert_metrics(dict(result.metrics), sklearn_binary(truth, p, 0.5))
    # The confidence alone (no value) gives the same probabilities.
    alone = evaluate_performance(BINARY, labelled(truth, label=label, score=score))
    assert alone is not None
    assert_metrics(dict(alone.metrics), sklearn_binary(truth, p, 0.5))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_binary_without_labels_uses_the_spec_threshold() -> None:
    truth, p = binary_case(seed=9)
    spec = PredictionSpec(task="binary", classes=("no", "yes"), threshold=0.3)
    from_value = evaluate_performance(spec, labelled(truth, value=p))
    from_score = evaluate_performance(spec, labelled(truth, score=p))
    expected = sklearn_binary(truth, p, 0.3)
    for result in (from_value, from_score):
        assert result is not None
        assert_metrics(dict(result.metrics), expected)


def test_binary_positive_class_is_the_second_declared_class() -> None:
    truth = ["no", "yes", "yes", "no", "yes"]
    predicted = ["yes", "yes", "no", "no", "yes"]
    result = evaluate_performance(BINARY, labelled(truth, label=predicted))
    flipped = evaluate_performance(
        PredictionSpec(task="binary", classes=("yes", "no")), labelled(truth, label=predicted)
    )
    assert result is not None and flipped is not None
    assert result.metrics["precision"] == pytest.approx(2 / 3)  # of "yes"
    assert flipped.metrics["precision"] == pytest.approx(1 / 2)  # of "no"
    assert result.metrics["f1"] == pytest.approx(f1_score(truth, predicted, pos_label="yes"))
    assert flipped.metrics["f1"] == pytest.approx(f1_score(truth, predicted, pos_label="no"))


def test_label_spellings_are_one_label() -> None:
    # A posted true reads back as 1 from SQLite and true from Elasticsearch; a model may
    # predict "true", "1", or "1.0": all are one class.
    predicted = ["true", "0", "1.0", "false", "1", "0.0"]
    expected = evaluate_performance(None, labelled([1, 0, 0, 0, 1, 1], label=predicted))
    assert expected is not None
    assert expected.metrics["accuracy"] == pytest.approx(4 / 6)
    for truth in (
        [True, False, False, False, True, True],
        ["true", "False", "0", "false", "TRUE", "1"],
        [1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
    ):
        assert evaluate_performance(None, labelled(truth, label=predicted)) == expected
    spec = PredictionSpec(task="binary", classes=("false", "true"))
    declared = evaluate_performance(spec, labelled([1, 0, 0, 0, 1, 1], label=predicted))
    assert declared is not None
    assert declared.metrics == expected.metrics
    assert [canonical_label(v) for v in (True, 2, 2.5, "2.50", " x ", "nan")] == [
        "1",
        "2",
        "2.5",
        "2.5",
        " x ",
        "nan",
    ]


def test_undefined_metrics_are_absent() -> None:
    # One class only in the truth: no ROC AUC; log loss is still defined.
    one_class = evaluate_performance(
        BINARY, labelled(["no", "no", "no"], value=[0.2, 0.7, 0.1], score=[NAN] * 3)
    )
    assert one_class is not None
    assert "roc_auc" not in one_class.metrics
    assert one_class.metrics["log_loss"] == pytest.approx(
        -(math.log(0.8) + math.log(0.3) + math.log(0.9)) / 3
    )
    # Labels without any probability: no ROC AUC, no log loss.
    no_scores = evaluate_performance(BINARY, labelled(["no", "yes"], label=["no", "yes"]))
    assert no_scores is not None
    assert set(no_scores.metrics) == {"accuracy", "precision", "recall", "f1"}
    # A perfect all-negative window has no positive anywhere: accuracy 1, and no
    # precision, recall or F1 rather than a misleading 0.
    negatives = evaluate_performance(BINARY, labelled(["no", "no"], label=["no", "no"]))
    assert negatives is not None
    assert dict(negatives.metrics) == {"accuracy": 1.0}
    for result in (one_class, no_scores, negatives):
        assert all(math.isfinite(v) for v in result.metrics.values())


def test_rows_without_a_prediction_are_skipped() -> None:
    truth = ["yes", "no", "yes", "no"]
    result = evaluate_performance(
        BINARY,
        labelled(truth, label=["yes", None, None, "no"], value=[NAN, NAN, 0.9, NAN]),
    )
    assert result is not None
    assert result.samples == 3  # row 1 has no label and no probability
    assert result.metrics["accuracy"] == 1.0
    # Rows 0 and 3 have a label but no probability: no ranking metric over part of them.
    assert "roc_auc" not in result.metrics
    nothing = evaluate_performance(BINARY, labelled(truth))
    assert nothing is not None
    assert (nothing.samples, dict(nothing.metrics)) == (0, {})


def test_no_labelled_rows_is_none() -> None:
    assert evaluate_performance(BINARY, Labelled()) is None
    assert evaluate_performance(None, Labelled()) is None


def test_multiclass_macro_average_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    classes = ["cat", "dog", "bird", "fish"]
    truth = rng.choice(classes[:3], 300).tolist()  # "fish" is never true...
    predicted = [t if rng.random() < 0.6 else str(rng.choice(classes)) for t in truth]
    predicted = [p if p != "bird" else "dog" for p in predicted]  # ...and "bird" never predicted
    spec = PredictionSpec(task="multiclass", classes=tuple(classes))
    result = evaluate_performance(spec, labelled(truth, label=predicted, score=[0.9] * 300))
    assert result is not None
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="macro", zero_division=0
    )
    per_precision, per_recall, _, _ = precision_recall_fscore_support(
        truth, predicted, labels=classes, average=None, zero_division=0
    )
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "f1_macro": f1,
        "f1_weighted": f1_score(truth, predicted, average="weighted", zero_division=0),
        # Undefined ones are absent: "bird" is never predicted, "fish" never true.
        **{f"precision_{c}": v for c, v in zip(classes, per_precision, strict=True) if c != "bird"},
        **{f"recall_{c}": v for c, v in zip(classes, per_recall, strict=True) if c != "fish"},
    }
    assert_metrics(dict(result.metrics), expected)
    assert result.confusion is not None
    assert result.confusion.classes == ("bird", "cat", "dog", "fish")
    assert np.array_equal(
        result.confusion.counts,
        confusion_matrix(truth, predicted, labels=["bird", "cat", "dog", "fish"]),
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")  # log_loss's y_pred renamed in 1.9
def test_multiclass_probabilities_give_ovr_auc_and_log_loss_as_sklearn() -> None:
    rng = np.random.default_rng(5)
    classes = ["a", "b", "c"]
    truth = rng.choice(classes, 400).tolist()
    raw = rng.random((400, 3)) + 1.5 * np.eye(3)[[classes.index(t) for t in truth]]
    proba = np.round(raw / raw.sum(axis=1, keepdims=True), 2)  # ties; sums near 1
    predicted = [classes[i] for i in proba.argmax(axis=1)]
    spec = PredictionSpec(task="multiclass", classes=tuple(classes))
    rows = labelled(truth, label=predicted, score=proba.max(axis=1).tolist())
    rows = Labelled(
        truth=rows.truth,
        predicted_value=rows.predicted_value,
        predicted_label=rows.predicted_label,
        score=rows.score,
        probabilities={c: proba[:, i] for i, c in enumerate(classes)},
    )
    result = evaluate_performance(spec, rows)
    assert result is not None
    shares = proba / proba.sum(axis=1, keepdims=True)
    assert result.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(truth, shares, multi_class="ovr", average="macro", labels=classes)
    )
    assert result.metrics["log_loss"] == pytest.approx(log_loss(truth, shares, labels=classes))


def test_multiclass_probabilities_missing_for_a_class_leave_auc_out() -> None:
    spec = PredictionSpec(task="multiclass", classes=("a", "b", "c"))
    rows = labelled(["a", "b", "c", "a"], label=["a", "b", "b", "a"], score=[0.9] * 4)
    rows = Labelled(
        truth=rows.truth,
        predicted_label=rows.predicted_label,
        score=rows.score,
        predicted_value=rows.predicted_value,
        probabilities={"a": np.array([0.9, 0.1, 0.1, 0.8]), "b": np.array([0.1, 0.9, 0.9, 0.2])},
    )
    result = evaluate_performance(spec, rows)
    assert result is not None
    assert "roc_auc" not in result.metrics and "log_loss" not in result.metrics
    assert result.metrics["accuracy"] == pytest.approx(0.75)


def test_multiclass_label_from_class_index() -> None:
    spec = PredictionSpec(task="multiclass", classes=("a", "b", "c"))
    result = evaluate_performance(
        spec, labelled(["a", "b", "c", "c"], value=[0.0, 1.0, 1.0, 2.5], label=[None] * 4)
    )
    assert result is not None
    assert result.samples == 3  # 2.5 is no class index
    assert result.metrics["accuracy"] == pytest.approx(2 / 3)


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(10, 3, 500)
    predicted = truth + rng.normal(0.5, 2, 500)
    predicted[::50] = NAN  # no prediction: skipped
    posted: list[LabelValue] = [str(v) if i % 3 == 0 else float(v) for i, v in enumerate(truth)]
    result = evaluate_performance(
        PredictionSpec(task="regression"), labelled(posted, value=predicted)
    )
    assert result is not None
    keep = ~np.isnan(predicted)
    assert (result.task, result.samples) == ("regression", int(keep.sum()))
    assert_metrics(
        dict(result.metrics),
        {
            "mae": mean_absolute_error(truth[keep], predicted[keep]),
            "rmse": math.sqrt(mean_squared_error(truth[keep], predicted[keep])),
        },
    )


def test_task_inferred_without_a_spec() -> None:
    regression = evaluate_performance(None, labelled([1, 2], value=[1.5, 2.0]))
    assert regression is not None
    assert (regression.task, regression.task_source) == ("regression", "inferred")
    assert dict(regression.metrics) == pytest.approx({"mae": 0.25, "rmse": math.sqrt(0.125)})
    multiclass = evaluate_performance(None, labelled(["a", "b", "c"], label=["a", "b", "b"]))
    assert multiclass is not None
    assert multiclass.task == "multiclass"
    assert evaluate_performance(None, labelled(["a"], score=[0.3])) is None


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_probabilities_against_0_1_labels_without_a_spec_are_binary() -> None:
    # A binary classifier logged without a schema prediction section: a probability per
    # row, ground truth 0/1. Scored as a regression, its "MAE" would look like a figure.
    truth_words, p = binary_case(seed=13)
    truth = [1 if word == "yes" else 0 for word in truth_words]
    result = evaluate_performance(None, labelled(truth, value=p))
    assert result is not None
    assert (result.task, result.task_source) == ("binary", "inferred")
    assert "predictions in [0, 1]" in result.task_reason
    assert_metrics(dict(result.metrics), sklearn_binary(truth_words, p, 0.5))
    declared = PredictionSpec(task="binary", classes=("0", "1"), threshold=0.5)
    from_schema = evaluate_performance(declared, labelled(truth, value=p))
    assert from_schema is not None
    assert (from_schema.task_source, from_schema.task_reason) == ("schema", "")
    assert from_schema.metrics == result.metrics


def test_misaligned_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="predicted_label"):
        evaluate_performance(BINARY, labelled(["yes", "no"], label=["yes"]))
