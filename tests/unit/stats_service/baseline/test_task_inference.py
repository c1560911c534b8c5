"""The task told from labels and predictions, as infer-schema and the performance check use it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from exporter.schema import PredictionSpec
from stats_service.baseline.task_inference import MAX_INTEGER_CLASSES, infer_task

RNG = np.random.default_rng(3)
PROBABILITIES = RNG.random(300).round(3).tolist()
BITS = (RNG.random(300) < 0.4).astype(int).tolist()


@pytest.mark.parametrize(
    ("labels", "predictions", "expected"),
    [
        # The defect: probabilities against 0/1 labels were scored as a regression.
        (BITS, PROBABILITIES, PredictionSpec("binary", ("0", "1"), None, 0.5)),
        ([bool(b) for b in BITS], PROBABILITIES, PredictionSpec("binary", ("0", "1"), None, 0.5)),
        ([float(b) for b in BITS], BITS, PredictionSpec("binary", ("0", "1"), None, 0.5)),
        # Two numeric labels that are not 0/1: classes in numeric order, not text order.
        ([2, 10, 10, 2], [0.1, 0.9, 0.7, 0.2], PredictionSpec("binary", ("2", "10"), None, 0.5)),
        (
            ["no", "yes", "yes"],
            PROBABILITIES[:3],
            PredictionSpec("binary", ("no", "yes"), None, 0.5),
        ),
        (
            ["cat", "dog", "bird"],
            ["cat", "cat", "dog"],
            PredictionSpec("multiclass", ("bird", "cat", "dog")),
        ),
        ([1, 2, 3, 3, 2], [1, 2, 2, 3, 1], PredictionSpec("multiclass", ("1", "2", "3"))),
        # Integer labels with fractional predictions: a quantity (a rating predicted 3.7).
        ([1, 2, 3, 3, 2], [1.2, 2.5, 2.9, 3.1, 1.8], PredictionSpec("regression")),
        # Two label values, predictions far outside [0, 1]: a regression, not a probability.
        ([1, 2, 2, 1], [1.5, 2.4, 1.7, -4.8], PredictionSpec("regression")),
        (
            RNG.normal(10, 3, 50).tolist(),
            RNG.normal(10, 3, 50).tolist(),
            PredictionSpec("regression"),
        ),
        # Labels alone (infer-schema without a prediction column).
        (BITS, [], PredictionSpec("binary", ("0", "1"), None, 0.5)),
        # Predictions alone (a window whose ground truth has not arrived yet).
        ([], PROBABILITIES, PredictionSpec("binary", (), None, 0.5)),
        ([], RNG.normal(5, 1, 20).tolist(), PredictionSpec("regression")),
    ],
)
def test_task_from_labels_and_predictions(
    labels: list[Any], predictions: list[Any], expected: PredictionSpec
) -> None:
    inferred = infer_task(labels, predictions)
    assert inferred.spec == expected
    assert inferred.reason  # said to the user


def test_many_integer_labels_are_a_quantity_not_classes() -> None:
    ages = list(range(18, 18 + MAX_INTEGER_CLASSES + 1))
    assert infer_task(ages, ages).spec == PredictionSpec("regression")
    few = ages[:MAX_INTEGER_CLASSES]
    assert infer_task(few, few).spec == PredictionSpec("multiclass", tuple(map(str, few)))


def test_missing_values_are_ignored_and_nothing_gives_no_spec() -> None:
    labels = [None, 1, math.nan, 0, 1]
    predictions = [0.2, None, 0.8, math.nan, 0.6]
    assert infer_task(labels, predictions).spec == PredictionSpec("binary", ("0", "1"), None, 0.5)
    nothing = infer_task([None, math.nan], [None])
    assert nothing.spec is None
    assert nothing.reason == "no label or prediction values"


def test_the_reason_names_what_decided() -> None:
    reason = infer_task(BITS, PROBABILITIES).reason
    assert reason == "labels with 2 values (0, 1) and predictions in [0, 1]"
