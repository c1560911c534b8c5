"""Rows transposed into columns: the form feature code works on.

The sidecar's protocol adapters produce rows (`list[dict[str, Any]]`); the baseline
builder decodes training files straight into columns. Both meet here, in `RawTable`,
and from there on run the same feature code.

A column is a list of raw JSON-like values (None where the row has no value), or, as a
decoding shortcut, a float64 array holding numbers only, NaN standing for a missing
value. Feature code treats None and NaN alike (missing) and never tells 3 from 3.0, so
both forms of the same values give the same features.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.schema import Source

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_ABSENT = object()


@dataclass(frozen=True)
class RawColumn:
    values: list[Any] | FloatArray
    # False where the row does not have the field at all; None: every row has it.
    present: BoolArray | None = None

    def present_mask(self, n_rows: int) -> BoolArray:
        return np.ones(n_rows, dtype=bool) if self.present is None else self.present


@dataclass(frozen=True)
class RawTable:
    n_rows: int
    columns: dict[str, RawColumn]

    def without(self, *fields: str) -> RawTable:
        kept = {name: column for name, column in self.columns.items() if name not in fields}
        return RawTable(self.n_rows, kept)


def rows_to_table(
    rows: Sequence[Mapping[str, Any]], fields: Iterable[str] | None = None
) -> RawTable:
    """Transpose rows; `fields` defaults to every key, in order of first appearance."""
    if fields is None:
        fields = dict.fromkeys(chain.from_iterable(rows))
    n_rows = len(rows)
    columns: dict[str, RawColumn] = {}
    for field in fields:
        values = [row.get(field) for row in rows]
        present = None
        if not all(field in row for row in rows):
            present = np.fromiter((field in row for row in rows), dtype=bool, count=n_rows)
        columns[field] = RawColumn(values, present)
    return RawTable(n_rows, columns)


def table_to_rows(table: RawTable) -> list[dict[str, Any]]:
    """The inverse of `rows_to_table` (array columns give floats, NaN where missing)."""
    rows: list[dict[str, Any]] = [{} for _ in range(table.n_rows)]
    for field, column in table.columns.items():
        values = column.values if isinstance(column.values, list) else column.values.tolist()
        present = column.present_mask(table.n_rows).tolist()
        for row, value, here in zip(rows, values, present, strict=True):
            if here:
                row[field] = value
    return rows


def extract(table: RawTable, source: Source) -> RawColumn:
    """The raw values a source reads; a path that does not resolve counts as absent."""
    column = table.columns.get(source.field)
    if column is None:
        return RawColumn([None] * table.n_rows, np.zeros(table.n_rows, dtype=bool))
    if not source.path:
        return column
    if not isinstance(column.values, list):
        # Numbers have no elements or keys to select.
        return RawColumn([None] * table.n_rows, np.zeros(table.n_rows, dtype=bool))
    if len(source.path) == 1 and isinstance(source.path[0], int):
        fast = _index_all(column.values, source.path[0])
        if fast is not None:
            return RawColumn(fast, column.present)
    found = [_walk(value, source.path) for value in column.values]
    present = np.fromiter((value is not _ABSENT for value in found), dtype=bool, count=len(found))
    if column.present is not None:
        present &= column.present
    values = [None if value is _ABSENT else value for value in found]
    return RawColumn(values, None if present.all() else present)


def _index_all(values: list[Any], index: int) -> list[Any] | None:
    """Element `index` of every row's tensor, when every row has one (the common case)."""
    if not all(type(value) is list for value in values):
        return None
    try:
        return [value[index] for value in values]
    except IndexError:
        return None


def _walk(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if type(value) is not list or step >= len(value):
                return _ABSENT
            value = value[step]
        else:
            if type(value) is not dict or step not in value:
                return _ABSENT
            value = value[step]
    return value
