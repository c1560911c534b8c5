"""Categorical features of dictionary-coded columns: the live path's code, per distinct value.

A decoder that already holds a column as codes into its distinct values (an Arrow
dictionary) need not pay Python work per cell: categorical and boolean features read
nothing but the one value, so `compute_table_features` run on the distinct values gives
every row's text and issues, and the rows only gather them by code. The training and
serving code stay one: this module calls it, it never restates its rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.features.compute import FeatureBatch, compute_table_features
from exporter.features.table import BoolArray, RawColumn, RawTable, extract
from exporter.schema import Feature, Schema

CodeArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class CodedColumn(RawColumn):
    """A column whose `values` are `dictionary[codes]`."""

    codes: CodeArray = field(kw_only=True)
    dictionary: list[Any] = field(kw_only=True)


@dataclass(frozen=True)
class CodedFeature:
    """One categorical or boolean feature of a coded column; per row, `texts[codes]`."""

    texts: list[str | None]  # per distinct value: the feature value (None: no value)
    issue_masks: dict[str, BoolArray]  # "<kind>:<feature>" -> distinct values with it
    codes: CodeArray

    def counts(self) -> npt.NDArray[np.int64]:
        """Rows per distinct value."""
        return np.bincount(self.codes, minlength=len(self.texts))

    def issue_counts(self) -> dict[str, int]:
        counts = self.counts()
        return {code: int(counts[mask].sum()) for code, mask in self.issue_masks.items()}


def compute_coded_features(
    schema: Schema, table: RawTable, *, hash_key: bytes | None = None
) -> tuple[FeatureBatch, dict[str, CodedFeature]]:
    """`compute_table_features`, with the categorical and boolean features whose column
    is a `CodedColumn` given as `CodedFeature`s; the batch holds every other feature and
    the unexpected fields."""
    hashed = schema.hashed_features()
    if hashed and not hash_key:  # as compute_table_features says it, for the whole schema
        raise ValueError(f"features {', '.join(hashed)} have log: hash; a hash key is required")
    coded: dict[str, CodedFeature] = {}
    for feature in schema.features:
        column = extract(table, feature.source)
        if isinstance(column, CodedColumn) and _codable(feature, column):
            distinct = {feature.source.field: RawColumn(column.dictionary)}
            one = compute_table_features(
                Schema(features=(feature,)),
                RawTable(len(column.dictionary), distinct),
                hash_key=hash_key,
            )
            coded[feature.name] = CodedFeature(
                one.categorical[feature.name], one.issue_masks, column.codes
            )
    rest = tuple(feature for feature in schema.features if feature.name not in coded)
    rest_schema = replace(schema, features=rest)
    # Columns only coded features read are no unexpected fields of the rest.
    only_coded = schema.read_fields() - rest_schema.read_fields()
    batch = compute_table_features(rest_schema, table.without(*only_coded), hash_key=hash_key)
    return batch, coded


def _codable(feature: Feature, column: CodedColumn) -> bool:
    # A row without the field is a per-row fact (missing_field) the dictionary cannot hold.
    return feature.type in ("categorical", "boolean") and column.present is None
