"""Raw column values -> typed feature values, one converter per kind, vectorised.

Every converter returns the values and a `mismatch` mask: rows whose value is present
but not of the declared kind. Those rows get no value (NaN / None), so a wrong type is
reported as `type_mismatch` and never counted as a real observation.

Rules shared by every kind: None and float NaN are missing; 3 and 3.0 are the same
value; ±inf is not a number a feature can use (type mismatch for numeric kinds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.features.table import BoolArray, FloatArray, RawColumn
from exporter.schema.definition import scalar_text

IndexArray = npt.NDArray[np.intp]

_NUMBER_TYPES = frozenset({int, float})
_NULLABLE_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
_BOOL_WORDS = {"true": "true", "false": "false"}


def is_nan(value: Any) -> bool:
    return type(value) is float and math.isnan(value)


def to_numbers(column: RawColumn) -> tuple[FloatArray, BoolArray]:
    """float64 values (NaN: missing or mismatch) and the mismatch mask."""
    if isinstance(column.values, np.ndarray):
        values = column.values.copy()
        mismatch = np.isinf(values)
    else:
        values, mismatch = _list_numbers(column.values)
    values[mismatch] = np.nan
    return values, mismatch


def _list_numbers(values: list[Any]) -> tuple[FloatArray, BoolArray]:
    if set(map(type, values)) <= _NULLABLE_NUMBER_TYPES:
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:
            pass  # an int beyond float range: the per-value path marks it
        else:
            return array, np.isinf(array)
    pairs = [_one_number(value) for value in values]
    array = np.fromiter((number for number, _ in pairs), dtype=np.float64, count=len(pairs))
    mismatch = np.fromiter((bad for _, bad in pairs), dtype=bool, count=len(pairs))
    return array, mismatch


def _one_number(value: Any) -> tuple[float, bool]:
    if value is None:
        return math.nan, False
    if type(value) in _NUMBER_TYPES:
        try:
            number = float(value)
        except OverflowError:
            return math.nan, True
        return number, math.isinf(number)
    return math.nan, True


def to_texts(column: RawColumn) -> tuple[list[str | None], BoolArray]:
    """Category text per row (None: missing or mismatch) and the mismatch mask."""
    n_rows = len(column.values)
    if isinstance(column.values, np.ndarray):
        # Render each distinct number once.
        distinct, inverse = np.unique(column.values, return_inverse=True)
        rendered = np.array([scalar_text(float(x)) for x in distinct.tolist()], dtype=object)
        return rendered[inverse].tolist(), np.zeros(n_rows, dtype=bool)
    values = column.values
    if set(map(type, values)) <= _TEXT_TYPES:
        return list(values), np.zeros(n_rows, dtype=bool)
    texts: list[str | None] = []
    mismatch = np.zeros(n_rows, dtype=bool)
    for i, value in enumerate(values):
        if type(value) is str:
            texts.append(value)
            continue
        try:
            texts.append(scalar_text(value))
        except TypeError:
            texts.append(None)
            mismatch[i] = True
    return texts, mismatch


def to_booleans(column: RawColumn) -> tuple[list[str | None], BoolArray]:
    """The words "true"/"false" per row from booleans, 0/1 and the words true/false (any case)."""
    if isinstance(column.values, np.ndarray):
        numbers = column.values
        texts = np.where(numbers == 1.0, "true", "false").astype(object)
        texts[np.isnan(numbers)] = None
        mismatch = ~np.isnan(numbers) & (numbers != 0.0) & (numbers != 1.0)
        texts[mismatch] = None
        return texts.tolist(), mismatch
    pairs = [_one_boolean(value) for value in column.values]
    mismatch = np.fromiter((bad for _, bad in pairs), dtype=bool, count=len(pairs))
    return [text for text, _ in pairs], mismatch


def _one_boolean(value: Any) -> tuple[str | None, bool]:
    if value is None:
        return None, False
    if isinstance(value, str):
        word = _BOOL_WORDS.get(value.strip().lower())
        return word, word is None
    if type(value) in (bool, int, float):
        if is_nan(value):
            return None, False
        if value in (0, 1):
            return ("true" if value == 1 else "false"), False
    return None, True


def array_stats(
    column: RawColumn, derives: tuple[str, ...]
) -> tuple[dict[str, FloatArray], BoolArray]:
    """Per-row statistics of (nested) numeric lists: size, mean, std, min, max.

    Elements must be finite numbers (booleans count as 0/1); an empty array has size 0
    and no mean/std/min/max.
    """
    n_rows = len(column.values)
    stats = {derive: np.full(n_rows, np.nan) for derive in derives}
    mismatch = np.zeros(n_rows, dtype=bool)
    values = column.values
    if isinstance(values, np.ndarray):
        mismatch = ~np.isnan(values)  # scalars, not arrays
        return stats, mismatch
    matrix = _uniform_matrix(values)
    if matrix is not None:
        _fill_stats(stats, np.arange(n_rows), matrix.reshape(n_rows, -1), mismatch)
        return stats, mismatch
    for i, value in enumerate(values):
        if value is None or is_nan(value):
            continue
        array = _numeric_array(value)
        if array is None:
            mismatch[i] = True
            continue
        _fill_stats(stats, np.array([i]), array.reshape(1, -1), mismatch)
    return stats, mismatch


def _uniform_matrix(values: list[Any]) -> FloatArray | None:
    """All rows as one float matrix when they are lists of one shape (a tensor batch)."""
    if not values or not all(type(value) is list for value in values):
        return None
    return _numeric_array(values)


def _numeric_array(value: Any) -> FloatArray | None:
    if type(value) is not list:
        return None
    try:
        array = np.array(value)
    except ValueError:  # ragged
        return None
    if array.dtype.kind not in "biuf":
        return None
    return array.astype(np.float64)


def _fill_stats(
    stats: dict[str, FloatArray], rows: IndexArray, matrix: FloatArray, mismatch: BoolArray
) -> None:
    finite = np.isfinite(matrix).all(axis=1)
    mismatch[rows[~finite]] = True
    rows, matrix = rows[finite], matrix[finite]
    if "size" in stats:
        stats["size"][rows] = matrix.shape[1]
    if matrix.shape[1] == 0 or len(rows) == 0:
        return
    reducers: dict[str, Callable[[FloatArray], FloatArray]] = {
        "mean": lambda m: m.mean(axis=1),
        "std": lambda m: m.std(axis=1),
        "min": lambda m: m.min(axis=1),
        "max": lambda m: m.max(axis=1),
    }
    for derive, reduce in reducers.items():
        if derive in stats:
            stats[derive][rows] = reduce(matrix)


def text_lengths(texts: list[str | None], derives: tuple[str, ...]) -> dict[str, FloatArray]:
    """length_chars: characters; length_tokens: whitespace-separated tokens."""
    n_rows = len(texts)
    out: dict[str, FloatArray] = {}
    if "length_chars" in derives:
        out["length_chars"] = np.fromiter(
            (math.nan if t is None else len(t) for t in texts), dtype=np.float64, count=n_rows
        )
    if "length_tokens" in derives:
        out["length_tokens"] = np.fromiter(
            (math.nan if t is None else len(t.split()) for t in texts),
            dtype=np.float64,
            count=n_rows,
        )
    return out
