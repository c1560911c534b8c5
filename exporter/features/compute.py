"""Deterministic preprocessing: rows -> feature values and per-row issues.

The single definition of what a feature value is. The sidecar calls `compute_features`
on the rows its protocol adapters produce; the baseline builder decodes training files
into the same `RawTable` and calls `compute_table_features`. `compute_features` is only
the transposition in front of it, so training and serving cannot skew.

Issue kinds, reported per row as "<kind>:<feature>":
  missing          the value is null (None/NaN) and the feature is not nullable
  missing_field    the row does not have the source field (or the path inside it)
                   and the feature is not nullable
  type_mismatch    a value that is not of the declared type (it is then not used);
                   numbers must be finite, integers integral, strings are not numbers
  out_of_range     a number outside the schema's range (the value is kept)
  unseen_category  a category not in the schema's list (the value is kept)
  unexpected_field a row field no feature reads (name cut to 100 characters; at most
                   20 such fields per batch)

Conventions: booleans are categorical "true"/"false"; categories are texts (3 and 3.0
are "3"); `log: hash` categories are replaced by `hash_value(key, text)` after the
unseen check, so drift still works on the deterministic hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np

from exporter.features.table import (
    BoolArray,
    FloatArray,
    RawColumn,
    RawTable,
    extract,
    rows_to_table,
)
from exporter.features.values import (
    array_stats,
    is_nan,
    text_lengths,
    to_booleans,
    to_numbers,
    to_texts,
)
from exporter.schema import MAX_NAME_LENGTH, Feature, Schema

__all__ = [
    "ISSUE_KINDS",
    "FeatureBatch",
    "coerce_csv_cell",
    "compute_features",
    "compute_table_features",
    "hash_value",
]

ISSUE_KINDS = (
    "missing_field",
    "missing",
    "type_mismatch",
    "out_of_range",
    "unseen_category",
    "unexpected_field",
)
MAX_UNEXPECTED_FIELDS = 20


def coerce_csv_cell(cell: str) -> int | float | str | None:
    """A CSV cell as the JSON-like value features read, the same for training and serving.

    Blank (empty or only whitespace) -> None; what Python's int() reads -> int; else what
    float() reads (including "1e3", "nan", "inf", " 2") -> float; anything else -> the
    cell unchanged.
    """
    if not cell.strip():
        return None
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


def hash_value(key: bytes, value: str) -> str:
    """HMAC-SHA256 of the value under the caller's key, as 16 hex characters."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureBatch:
    n_rows: int
    numeric: dict[str, FloatArray] = field(default_factory=dict)  # NaN = no value
    categorical: dict[str, list[str | None]] = field(default_factory=dict)
    # "<kind>:<feature>" -> the rows that have this issue (only issues that occur).
    issue_masks: dict[str, BoolArray] = field(default_factory=dict)

    @cached_property
    def issues(self) -> list[list[str]]:
        """Per row, its issues in schema order."""
        per_row: list[list[str]] = [[] for _ in range(self.n_rows)]
        for code, mask in self.issue_masks.items():
            for row in np.flatnonzero(mask).tolist():
                per_row[row].append(code)
        return per_row

    def issue_counts(self) -> dict[str, int]:
        return {code: int(mask.sum()) for code, mask in self.issue_masks.items()}


def compute_features(
    schema: Schema, rows: Sequence[Mapping[str, Any]], *, hash_key: bytes | None = None
) -> FeatureBatch:
    read = schema.read_fields()
    extra = (key for row in rows for key in row if key not in read)
    unexpected = list(dict.fromkeys(extra))[:MAX_UNEXPECTED_FIELDS]
    fields = [*sorted(read), *unexpected]
    return compute_table_features(schema, rows_to_table(rows, fields), hash_key=hash_key)


def compute_table_features(
    schema: Schema, table: RawTable, *, hash_key: bytes | None = None
) -> FeatureBatch:
    hashed = schema.hashed_features()
    if hashed and not hash_key:
        raise ValueError(f"features {', '.join(hashed)} have log: hash; a hash key is required")
    batch = FeatureBatch(table.n_rows)
    for feature in schema.features:
        _compute_one(feature, extract(table, feature.source), batch, hash_key or b"")
    read = schema.read_fields()
    unexpected = [name for name in table.columns if name not in read][:MAX_UNEXPECTED_FIELDS]
    for name in unexpected:
        present = table.columns[name].present_mask(table.n_rows)
        _flag(batch, "unexpected_field", name[:MAX_NAME_LENGTH], present)
    return batch


def _compute_one(feature: Feature, column: RawColumn, batch: FeatureBatch, key: bytes) -> None:
    n_rows = batch.n_rows
    out_of_range = unseen = None
    if feature.type in ("numeric", "integer"):
        values, mismatch = to_numbers(column)
        if feature.type == "integer":
            fractional = np.isfinite(values) & (values != np.floor(values))
            values[fractional] = np.nan
            mismatch |= fractional
        null = np.isnan(values) & ~mismatch
        if feature.range is not None:
            low, high = feature.range
            out_of_range = (values < low) | (values > high)
        batch.numeric[feature.name] = values + 0.0  # -0.0 -> 0.0: one spelling of zero
    elif feature.type in ("boolean", "categorical"):
        convert = to_booleans if feature.type == "boolean" else to_texts
        texts, mismatch = convert(column)
        null = _none_mask(texts) & ~mismatch
        if feature.categories is not None:
            unseen = _unseen(texts, frozenset(feature.categories))
        if feature.log == "hash":
            texts = _hashed(texts, key)
        batch.categorical[feature.name] = texts
    elif feature.type == "text":
        texts, mismatch = to_texts(column)
        null = _none_mask(texts) & ~mismatch
        for derive, lengths in text_lengths(texts, feature.derive).items():
            batch.numeric[f"{feature.name}.{derive}"] = lengths
    else:
        stats, mismatch = array_stats(column, feature.derive)
        null = _null_mask(column) & ~mismatch
        for derive, stat in stats.items():
            batch.numeric[f"{feature.name}.{derive}"] = stat
    present = column.present_mask(n_rows)
    if not feature.nullable:
        _flag(batch, "missing_field", feature.name, ~present)
        _flag(batch, "missing", feature.name, null & present)
    _flag(batch, "type_mismatch", feature.name, mismatch)
    if out_of_range is not None:
        _flag(batch, "out_of_range", feature.name, out_of_range)
    if unseen is not None:
        _flag(batch, "unseen_category", feature.name, unseen)


def _flag(batch: FeatureBatch, kind: str, name: str, mask: BoolArray) -> None:
    if mask.any():
        code = f"{kind}:{name}"
        previous = batch.issue_masks.get(code)
        batch.issue_masks[code] = mask if previous is None else previous | mask


def _none_mask(texts: list[str | None]) -> BoolArray:
    if None not in texts:
        return np.zeros(len(texts), dtype=bool)
    return np.fromiter(map(operator.is_, texts, repeat(None)), dtype=bool, count=len(texts))


def _null_mask(column: RawColumn) -> BoolArray:
    if isinstance(column.values, np.ndarray):
        return np.isnan(column.values)
    return np.fromiter(
        (value is None or is_nan(value) for value in column.values),
        dtype=bool,
        count=len(column.values),
    )


def _unseen(texts: list[str | None], allowed: frozenset[str]) -> BoolArray | None:
    strangers = {text for text in set(texts) if text is not None and text not in allowed}
    if not strangers:
        return None
    return np.fromiter((text in strangers for text in texts), dtype=bool, count=len(texts))


def _hashed(texts: list[str | None], key: bytes) -> list[str | None]:
    hashes: dict[str | None, str | None] = {None: None}
    for text in set(texts):
        if text is not None:
            hashes[text] = hash_value(key, text)
    return list(map(hashes.__getitem__, texts))
