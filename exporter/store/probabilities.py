"""Per-class probabilities of a window's rows, as window readers return them: one array
per class, NaN where a row gives no probability of that class. Both backends store a
row's probabilities as one object (class -> probability); readers turn them into columns
here, so a class one row lacks reads alike from SQLite and Elasticsearch."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def probability_columns(
    objects: Sequence[Mapping[str, Any]], rows: Sequence[int], count: int
) -> dict[str, FloatArray]:
    """Class -> `count` values: `objects[k]` is row `rows[k]`'s; other rows are NaN."""
    classes = dict.fromkeys(itertools.chain.from_iterable(objects))
    at = np.asarray(rows, dtype=np.intp)
    columns: dict[str, FloatArray] = {}
    for name in classes:
        values = list(map(operator.methodcaller("get", name), objects))
        column = np.full(count, np.nan)
        try:  # what the sidecar writes: numbers, None where a class is not given
            column[at] = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):  # anything else a hand-edited document may hold
            column[at] = [_number(value) for value in values]
        columns[name] = column
    return columns


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return np.nan
