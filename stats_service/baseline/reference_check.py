"""Validation of a baseline's "reference" section (`baseline.reference`), key by key,
reported as the rest of the file is (`<file>: reference.<key>: expected ...; got ...`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from exporter.features.table import FloatArray
from stats_service.baseline.check import BaselineChecker
from stats_service.baseline.contents import Baseline
from stats_service.baseline.reference import REFERENCE_ROWS, ReferenceRows

TASKS = ("binary", "multiclass", "regression")


def check_reference(checker: BaselineChecker, value: Any, baseline: Baseline) -> ReferenceRows:
    raw = checker.mapping(value, "reference")
    task = checker.get(raw, "task", "reference")
    if task not in TASKS:
        checker.expect("reference.task", f"one of {', '.join(TASKS)}", task)
    rows_seen = checker.integer(checker.get(raw, "rows_seen", "reference"), "reference.rows_seen")
    if task == "regression":
        target = _numbers(checker, checker.get(raw, "target", "reference"), "reference.target")
        prediction = _numbers(
            checker, checker.get(raw, "prediction", "reference"), "reference.prediction"
        )
        columns = checker.texts(
            checker.get(raw, "feature_columns", "reference"), "reference.feature_columns"
        )
        unknown = set(columns) - set(baseline.row_sample.columns)
        if unknown:
            checker.expect(
                "reference.feature_columns",
                f"names among the row sample's columns {list(baseline.row_sample.columns)}",
                sorted(unknown),
            )
        features = _matrix(
            checker, checker.get(raw, "features", "reference"), "reference.features", len(columns)
        )
        _same_length(checker, len(target), {"prediction": prediction, "features": features})
        return ReferenceRows(
            task=task,
            rows_seen=rows_seen,
            target=target,
            prediction=prediction,
            feature_columns=columns,
            features=features,
        )
    classes = checker.texts(checker.get(raw, "classes", "reference"), "reference.classes")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        checker.expect("reference.classes", "at least two distinct classes", list(classes))
    truth = checker.texts(checker.get(raw, "truth", "reference"), "reference.truth")
    predicted_raw = checker.items(checker.get(raw, "predicted", "reference"), "reference.predicted")
    predicted = tuple(
        None if v is None else checker.text(v, f"reference.predicted[{i}]")
        for i, v in enumerate(predicted_raw)
    )
    probabilities = _matrix(
        checker,
        checker.get(raw, "probabilities", "reference"),
        "reference.probabilities",
        len(classes),
    )
    _same_length(
        checker,
        len(truth),
        {"predicted": np.empty(len(predicted)), "probabilities": probabilities},
    )
    return ReferenceRows(
        task=task,
        rows_seen=rows_seen,
        classes=classes,
        truth=truth,
        predicted=predicted,
        probabilities=probabilities,
    )


def _numbers(checker: BaselineChecker, value: Any, path: str) -> FloatArray:
    items = checker.items(value, path)
    if len(items) > REFERENCE_ROWS * 10:
        checker.fail(path, f"expected at most {REFERENCE_ROWS * 10} rows; got {len(items)}")
    return np.array(
        [math.nan if v is None else checker.number(v, f"{path}[{i}]") for i, v in enumerate(items)],
        dtype=np.float64,
    )


def _matrix(checker: BaselineChecker, value: Any, path: str, width: int) -> FloatArray:
    rows = checker.items(value, path)
    parsed = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        cells = checker.items(row, f"{path}[{i}]")
        if len(cells) != width:
            checker.fail(f"{path}[{i}]", f"expected {width} values; got {len(cells)}")
        parsed[i] = [
            math.nan if v is None else checker.number(v, f"{path}[{i}][{j}]")
            for j, v in enumerate(cells)
        ]
    return parsed


def _same_length(checker: BaselineChecker, rows: int, others: dict[str, FloatArray]) -> None:
    for name, values in others.items():
        if len(values) != rows:
            checker.fail(f"reference.{name}", f"expected {rows} rows; got {len(values)}")
