"""Schemaless mode: infer a starting schema from rows as they come.

Used by `mlmon-stats infer-schema DATA` and by the sidecar when it runs without a
schema. Rows are flattened (nested mappings -> dotted names read by a selector; lists of
numbers -> array features). State is bounded: at most `max_features` fields, names of at
most 100 characters (longer ones are skipped), at most `max_categories` + 1 distinct
texts per field.

Type rules over the non-missing values of a field:
  all booleans (or the words true/false)  -> boolean
  all numbers                             -> integer if all integral, else numeric,
                                             with the observed [min, max] as range
  scalars with at most `max_categories` distinct texts, each seen twice on average
                                          -> categorical with those categories
  other scalars                           -> text
  all (nested) lists of numbers           -> array
  only missing values                     -> categorical (nothing else is known)
Anything else (mappings in lists, lists mixed with scalars) is skipped, and so are
names that are not printable (a NUL, a control character, a lone surrogate). A field is
nullable when some row lacks it or has it null.

Secrets: a field whose name looks like a credential (`looks_secret`: password, token,
api_key, ...) is inferred as a categorical feature logged as a keyed hash, and none of
its values is kept, so neither `/schema` nor the inferred file ever shows one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporter.names import looks_secret, printable
from exporter.schema.definition import MAX_NAME_LENGTH, Schema, SchemaError, Source, scalar_text
from exporter.schema.parse import SchemaParser

_MAX_DEPTH = 8
_MAX_SKIPPED_NAMES = 100


@dataclass
class _FieldStats:
    path: tuple[str, ...]
    first_row: int
    secret: bool = False
    nulls: int = 0
    numbers: int = 0
    fractional: bool = False
    low: float = math.inf
    high: float = -math.inf
    booleans: int = 0
    strings: int = 0
    arrays: int = 0
    others: int = 0
    distinct: set[str] = field(default_factory=set)

    @property
    def observed(self) -> int:
        return self.numbers + self.booleans + self.strings + self.arrays + self.others


class SchemaInference:
    def __init__(
        self,
        *,
        max_features: int = 200,
        max_name_length: int = MAX_NAME_LENGTH,
        max_categories: int = 50,
    ) -> None:
        self.max_features = max_features
        self.max_name_length = max_name_length
        self.max_categories = max_categories
        self.rows_seen = 0
        self._fields: dict[str, _FieldStats] = {}
        self._skipped: dict[str, None] = {}

    @property
    def skipped_fields(self) -> list[str]:
        """Fields left out: over the feature cap, names too long, or values of no usable
        type (mappings inside lists, lists mixed with scalars)."""
        unusable = [name for name, stats in self._fields.items() if _unusable(stats)]
        return [*self._skipped, *unusable]

    @property
    def usable(self) -> bool:
        """Whether some field so far can become a feature (`schema` needs one)."""
        return any(not _unusable(stats) for stats in self._fields.values())

    def update(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self._flatten(row, ())
            self.rows_seen += 1

    def _flatten(self, mapping: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in mapping.items():
            path = (*prefix, str(key))
            if isinstance(value, Mapping) and len(path) < _MAX_DEPTH:
                self._flatten(value, path)
            else:
                self._observe(path, value)

    def _observe(self, path: tuple[str, ...], value: Any) -> None:
        name = ".".join(path)
        stats = self._fields.get(name)
        if stats is None:
            if (
                len(name) > self.max_name_length
                or not name.isprintable()
                or len(self._fields) >= self.max_features
            ):
                if len(self._skipped) < _MAX_SKIPPED_NAMES:
                    self._skipped[printable(name, self.max_name_length)] = None
                return
            stats = self._fields[name] = _FieldStats(path, self.rows_seen, looks_secret(name))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            stats.nulls += 1
        elif isinstance(value, bool):
            stats.booleans += 1
            self._remember(stats, scalar_text(value))
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range cannot be a feature
                stats.others += 1
                return
            stats.numbers += 1
            stats.fractional |= not number.is_integer()
            stats.low, stats.high = min(stats.low, number), max(stats.high, number)
            self._remember(stats, scalar_text(value))
        elif isinstance(value, str):
            if value.strip().lower() in ("true", "false"):
                stats.booleans += 1
            else:
                stats.strings += 1
            self._remember(stats, value)
        elif isinstance(value, list) and _is_numeric_list(value):
            stats.arrays += 1
        else:
            stats.others += 1

    def _remember(self, stats: _FieldStats, text: str | None) -> None:
        if stats.secret:
            return  # a credential's values are never held, let alone published
        if text is not None and len(stats.distinct) <= self.max_categories:
            stats.distinct.add(text)

    def schema(self, model: str | None = None) -> Schema:
        """The inferred schema, validated like any schema file; SchemaError when no field
        so far can be a feature (see `usable`)."""
        if not self.usable:
            skipped = ", ".join(self.skipped_fields[:5]) or "none"
            raise SchemaError(
                f"<inferred schema>: no field usable as a feature among {len(self._fields)} "
                f"seen in {self.rows_seen} rows (left out: {skipped})"
            )
        features = []
        for name, stats in self._fields.items():
            feature = self._feature(name, stats)
            if feature is not None:
                features.append(feature)
        document: dict[str, Any] = {"features": features}
        if model is not None:
            document["model"] = model
        return SchemaParser("<inferred schema>").schema(document)

    def _feature(self, name: str, stats: _FieldStats) -> dict[str, Any] | None:
        seen_in = self.rows_seen - stats.first_row
        nullable = stats.nulls > 0 or stats.nulls + stats.observed < seen_in
        if _unusable(stats):
            return None
        feature: dict[str, Any] = {"name": name}
        if len(stats.path) > 1:
            selector = Source("selector", stats.path[0], stats.path[1:]).selector_text()
            feature["source"] = {"selector": selector}
        observed = stats.observed
        if stats.secret:
            feature["type"] = "categorical"
            feature["log"] = "hash"
        elif observed == 0:
            feature["type"] = "categorical"
        elif stats.arrays:
            feature["type"] = "array"
        elif stats.booleans == observed:
            feature["type"] = "boolean"
        elif stats.numbers == observed:
            integral = not stats.fractional
            feature["type"] = "integer" if integral else "numeric"
            low, high = (int(stats.low), int(stats.high)) if integral else (stats.low, stats.high)
            if math.isfinite(stats.low) and math.isfinite(stats.high):
                feature["range"] = [low, high]
        elif len(stats.distinct) <= self.max_categories and observed >= 2 * len(stats.distinct):
            feature["type"] = "categorical"
            feature["categories"] = sorted(stats.distinct)
        else:
            feature["type"] = "text"
        feature["nullable"] = nullable
        return feature


_FLOATS_OR_BOOLS = frozenset({float, bool})


def _unusable(stats: _FieldStats) -> bool:
    return stats.others > 0 or 0 < stats.arrays < stats.observed


def _is_numeric_list(value: list[Any]) -> bool:
    """What `array_stats` reads: a (nested, rectangular) list of numbers or booleans."""
    if _FLOATS_OR_BOOLS.issuperset(map(type, value)):
        return True  # the usual case, without numpy's conversion (what it would decide)
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except ValueError:  # ragged
        return False


def infer_schema(
    rows: Iterable[Mapping[str, Any]],
    *,
    max_features: int = 200,
    max_categories: int = 50,
    model: str | None = None,
) -> Schema:
    inference = SchemaInference(max_features=max_features, max_categories=max_categories)
    inference.update(rows)
    if inference.rows_seen == 0:
        raise ValueError("no rows to infer a schema from")
    return inference.schema(model)
