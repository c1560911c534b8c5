"""A data file as a window, for `mlmon-stats report`: the offline twin of a live window.

Columns `proba_<class>` are the model's probability of each class (for estimating
performance without labels), as in the baseline's training data.
The file goes through the same feature code as the baseline (`compute_table_features`)
and becomes the same `Window` a SQLite read gives, so `summarize_window` and every
statistic after it are the live service's own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter.features.compute import compute_table_features
from exporter.features.table import FloatArray, RawColumn
from exporter.store.sqlite.read import Window
from stats_service.baseline.contents import Baseline, BaselineError, NumericFeatureBaseline
from stats_service.baseline.readers import DataReader
from stats_service.baseline.reference import column_values, probability_columns, to_float
from stats_service.windows.sqlite import summarize_window
from stats_service.windows.summary import WindowSummary

CHUNK_ROWS = 50_000


def summarize_file(
    baseline: Baseline,
    path: str | Path,
    *,
    prediction_column: str | None = None,
    label_column: str | None = None,
    score_column: str | None = None,
    hash_key: bytes | None = None,
    model: str | None = None,
) -> WindowSummary:
    """The file as a window named after it, of `model` (default: the schema's model).
    Raises BaselineError naming the file when it cannot be read or lacks a column."""
    window = read_file(
        baseline,
        path,
        extra={"prediction": prediction_column, "label": label_column, "score": score_column},
        hash_key=hash_key,
    )
    if model is not None:
        window = dataclasses.replace(window, model=model)
    return summarize_window(window, baseline, Path(path).name, 0.0, 0.0)


def read_file(
    baseline: Baseline,
    path: str | Path,
    *,
    extra: dict[str, str | None],
    hash_key: bytes | None = None,
) -> Window:
    schema = baseline.schema
    numeric_names = tuple(
        f.name for f in baseline.features if isinstance(f, NumericFeatureBaseline)
    )
    categorical_names = tuple(f.name for f in baseline.features if f.name not in numeric_names)
    named = {role: column for role, column in extra.items() if column}
    numeric: list[FloatArray] = []
    categorical: dict[str, list[str | None]] = {name: [] for name in categorical_names}
    extras: dict[str, list[Any]] = {role: [] for role in named}
    rows = 0
    probabilities: dict[str, list[float]] = {}
    for table in DataReader(path).chunks(CHUNK_ROWS):
        for role, column in named.items():
            if column not in table.columns:
                raise BaselineError(f"{path}: {role} column {column!r} is not in the data")
            extras[role].extend(_values(table.columns[column], table.n_rows))
        # A column per class, `proba_<class>`, as for the baseline (`baseline.reference`).
        by_class = probability_columns(list(table.columns))
        for name, column in by_class.items():
            values = column_values(table.columns[column], table.n_rows)
            probabilities.setdefault(name, [math.nan] * rows).extend(map(to_float, values))
        skipped = [*named.values(), *by_class.values()]
        batch = compute_table_features(schema, table.without(*skipped), hash_key=hash_key)
        nan = np.full(table.n_rows, np.nan)
        numeric.append(np.column_stack([batch.numeric.get(n, nan) for n in numeric_names]))
        for name in categorical_names:
            categorical[name].extend(batch.categorical.get(name, [None] * table.n_rows))
        rows += table.n_rows
    if rows == 0:
        raise BaselineError(f"{path}: no data rows")
    predictions = extras.get("prediction", [None] * rows)
    return Window(
        model=schema.model or "",
        numeric_names=numeric_names,
        numeric=np.vstack(numeric).astype(np.float32).reshape(rows, len(numeric_names)),
        categorical_names=categorical_names,
        categorical=categorical,
        prediction_value=_numbers(predictions),
        prediction_score=_numbers(extras.get("score", [None] * rows)),
        prediction_label=[None if _is_number(v) or v is None else str(v) for v in predictions],
        label=[
            v if v is None or isinstance(v, str | bool | int | float) else str(v)
            for v in extras.get("label", [None] * rows)
        ],
        timestamps=np.zeros(rows),
        probabilities={name: np.array(values) for name, values in probabilities.items()},
    )


def _values(column: RawColumn, n_rows: int) -> Sequence[Any]:
    if isinstance(column.values, np.ndarray):
        return [None if np.isnan(v) else v for v in column.values.tolist()]
    return column.values[:n_rows]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(values: Sequence[Any]) -> FloatArray:
    return np.array([float(v) if _is_number(v) else np.nan for v in values], dtype=np.float64)
