"""Build a baseline from training data, through the sidecar's own feature code.

One streaming pass: each chunk of the file becomes a `RawTable`, then
`exporter.features.compute.compute_table_features` turns it into feature values exactly as the
sidecar does for live rows, and bounded accumulators (`stats_service.baseline.sketches`) take it.
Categorical columns the CSV decoder hands over as codes into their distinct cells
(`exporter.features.coded`) take the same code once per distinct cell; their counts and
samples are then made from the codes (np.bincount), never from a Python object per cell.

Quantile edges: np.quantile (linear) over a reservoir sample of up to 100,000 values per
feature. Up to that many values they are the exact quantiles of the data; beyond, the
rank error is about 1/sqrt(100,000) = 0.3%. Equal quantiles (ties, constant features)
collapse, so a feature may have fewer than `bins` bins. Reference proportions per bin
come from the same sample.

Labelled reference rows (`baseline.reference`), for estimating performance without
labels, are kept when a label column is named: with the columns `proba_<class>` for a
classifier (task from the schema; else binary for one or two such columns, multiclass
for more), with the prediction column for a regression (the schema's task, or numeric
label and prediction without probability columns).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import numpy as np

from exporter.features.coded import CodedFeature, compute_coded_features
from exporter.features.compute import FeatureBatch
from exporter.features.table import FloatArray, RawColumn, RawTable
from exporter.schema import Feature, Schema, Source, schema_hash
from stats_service.baseline.contents import (
    FORMAT_VERSION,
    Baseline,
    BaselineError,
    CategoricalFeatureBaseline,
    DataInfo,
    FeatureBaseline,
    NumericFeatureBaseline,
    RowSample,
)
from stats_service.baseline.files import load_baseline, save_baseline
from stats_service.baseline.progress import BuildProgress
from stats_service.baseline.readers import DataReader
from stats_service.baseline.reference import (
    PROBABILITY_PREFIX,
    REFERENCE_ROWS,
    ReferenceSampler,
    column_values,
    probability_columns,
)
from stats_service.baseline.sketches import (
    QUANTILE_SAMPLE_SIZE,
    CategoryCounter,
    Moments,
    NumberReservoir,
    ReservoirSlots,
    TextReservoir,
)

__all__ = [
    "Baseline",
    "BaselineError",
    "BuildProgress",
    "build_baseline",
    "load_baseline",
    "save_baseline",
]

MAX_CATEGORIES = 1000
# Distinct values counted per categorical feature before new ones go to __other__.
MAX_TRACKED_CATEGORIES = 10_000


def build_baseline(
    schema: Schema,
    data_path: str | Path,
    *,
    prediction_column: str | None = None,
    label_column: str | None = None,
    bins: int = 10,
    sample_size: int = 5000,
    chunk_rows: int = 50_000,
    progress: Callable[[BuildProgress], None] | None = None,
    hash_key: bytes | None = None,
    probability_prefix: str = PROBABILITY_PREFIX,
    reference_rows: int = REFERENCE_ROWS,
) -> Baseline:
    """Read `data_path` once and summarise every output column of `schema`.

    The prediction and label columns, when named, are summarised like features: numeric
    for a regression task (label: also numeric), categorical for a multiclass task
    (label: also for binary); otherwise numeric when their first values are all numbers.
    """
    if bins < 1 or sample_size < 0 or chunk_rows < 1:
        raise ValueError("bins and chunk_rows must be >= 1, sample_size >= 0")
    reader = DataReader(data_path)
    builder = _Builder(schema, bins, sample_size)
    named = {"prediction": prediction_column, "label": label_column}
    extra = {role: name for role, name in named.items() if name is not None}
    extra_schemas: dict[str, Schema] = {}
    extra_builders: dict[str, _Builder] = {}
    found: set[str] = set()
    sampler: ReferenceSampler | None = None
    probabilities: dict[str, str] = {}
    for table in reader.chunks(chunk_rows):
        if not extra_schemas:  # decided on the first chunk, so every row is counted
            for role, name in extra.items():
                column = table.columns.get(name)
                extra_schemas[role] = _column_schema(name, role, schema, column)
                extra_builders[role] = _Builder(extra_schemas[role], bins, sample_size)
            probabilities = probability_columns(list(table.columns), probability_prefix)
            sampler = _reference_sampler(
                schema, extra_schemas, probabilities, builder.numeric_names, reference_rows
            )
        found.update(name for name in extra.values() if name in table.columns)
        features_table = table.without(*extra.values(), *probabilities.values())
        batch, coded = compute_coded_features(schema, features_table, hash_key=hash_key)
        builder.add(batch, coded)
        if sampler is not None and label_column in table.columns:
            _sample_reference(sampler, table, label_column, prediction_column, batch)
        for role, extra_schema in extra_schemas.items():
            extra_builders[role].add(*compute_coded_features(extra_schema, table))
        if progress is not None:
            progress(BuildProgress(builder.rows, reader.bytes_read, reader.total_bytes))
    for role, name in extra.items():
        if name not in found:
            raise BaselineError(f"{data_path}: {role} column {name!r} is not in the data")
    if builder.rows == 0:
        raise BaselineError(f"{data_path}: no data rows")
    return Baseline(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        schema=schema,
        schema_hash=schema_hash(schema),
        data=DataInfo(path=str(data_path), sha256=reader.sha256, rows=builder.rows),
        bins=bins,
        sample_size=sample_size,
        features=builder.features(),
        row_sample=builder.row_sample(),
        issue_counts=builder.issue_counts,
        prediction=extra_builders["prediction"].features()[0] if prediction_column else None,
        label=extra_builders["label"].features()[0] if label_column else None,
        reference=None if sampler is None else sampler.result(),
    )


def _reference_sampler(
    schema: Schema,
    extra_schemas: dict[str, Schema],
    probabilities: dict[str, str],
    numeric_names: list[str],
    capacity: int,
) -> ReferenceSampler | None:
    """What to keep of the labelled rows, by task (see the module docstring)."""
    if "label" not in extra_schemas or capacity < 1:
        return None
    spec = schema.prediction
    task = spec.task if spec is not None else None
    if task is None and probabilities:
        task = "binary" if len(probabilities) <= 2 else "multiclass"
    if task is None and "prediction" in extra_schemas:
        kinds = {extra.output_columns()[0].kind for extra in extra_schemas.values()}
        task = "regression" if kinds == {"numeric"} else None
    if task is None or (task == "regression" and "prediction" not in extra_schemas):
        return None
    classes = spec.classes if spec is not None else ()
    if task == "regression":
        return ReferenceSampler(task, (), {}, numeric_names, capacity)
    return ReferenceSampler(task, classes, probabilities, (), capacity)


def _sample_reference(
    sampler: ReferenceSampler,
    table: RawTable,
    label_column: str,
    prediction_column: str | None,
    batch: FeatureBatch,
) -> None:
    n = table.n_rows
    truth = column_values(table.columns[label_column], n)
    predicted_column = table.columns.get(prediction_column) if prediction_column else None
    predicted = [None] * n if predicted_column is None else column_values(predicted_column, n)
    probabilities = {
        name: column_values(table.columns[name], n) for name in sampler.probability_columns.values()
    }
    sampler.add(truth, predicted, probabilities, batch.numeric)


def _column_schema(name: str, role: str, schema: Schema, column: RawColumn | None) -> Schema:
    """A one-feature schema for the prediction or label column (see build_baseline)."""
    task = schema.prediction.task if schema.prediction is not None else None
    kind: Literal["numeric", "categorical"]
    if task == "regression":
        kind = "numeric"
    elif task == "multiclass" or (task == "binary" and role == "label"):
        kind = "categorical"
    else:
        kind = "numeric" if column is None or _all_numbers(column) else "categorical"
    feature = Feature(name=name, type=kind, source=Source("column", name), nullable=True)
    return Schema(features=(feature,))


def _all_numbers(column: RawColumn) -> bool:
    if isinstance(column.values, np.ndarray):
        return True
    return all(type(v) in (int, float) for v in column.values if v is not None)


class _Builder:
    """Accumulators for every output column of one schema."""

    def __init__(self, schema: Schema, bins: int, sample_size: int) -> None:
        self.bins = bins
        self.rows = 0
        self.issue_counts: dict[str, int] = {}
        self.columns = schema.output_columns()
        self.numeric_names = [c.name for c in self.columns if c.kind == "numeric"]
        self.numeric = {name: _NumericAccumulator(name, sample_size) for name in self.numeric_names}
        self.categorical = {
            c.name: _CategoricalAccumulator(c.name, sample_size)
            for c in self.columns
            if c.kind == "categorical"
        }
        self._row_slots = ReservoirSlots(sample_size, "rows")
        self._row_matrix = np.full((sample_size, len(self.numeric_names)), np.nan)

    def add(self, batch: FeatureBatch, coded: dict[str, CodedFeature]) -> None:
        self.rows += batch.n_rows
        counts = [batch.issue_counts(), *(feature.issue_counts() for feature in coded.values())]
        for code, count in itertools.chain.from_iterable(c.items() for c in counts):
            if count:
                self.issue_counts[code] = self.issue_counts.get(code, 0) + count
        for name, accumulator in self.numeric.items():
            accumulator.add(batch.numeric[name])
        for name, categorical in self.categorical.items():
            if name in coded:
                categorical.add_coded(coded[name])
            else:
                categorical.add(batch.categorical[name])
        positions, slots = self._row_slots.place(batch.n_rows)
        for j, name in enumerate(self.numeric_names):
            self._row_matrix[slots, j] = batch.numeric[name][positions]

    def features(self) -> tuple[FeatureBaseline, ...]:
        results: list[FeatureBaseline] = []
        for column in self.columns:
            if column.kind == "numeric":
                results.append(self.numeric[column.name].result(self.bins))
            else:
                results.append(self.categorical[column.name].result())
        return tuple(results)

    def row_sample(self) -> RowSample:
        filled = self._row_matrix[: min(self._row_slots.seen, self._row_slots.capacity)]
        return RowSample(tuple(self.numeric_names), tuple(map(tuple, filled.tolist())))


class _NumericAccumulator:
    def __init__(self, name: str, sample_size: int) -> None:
        self.name = name
        self.missing = 0
        self.moments = Moments()
        self.sample_size = sample_size
        # One reservoir serves the quantiles and, subsampled, the sample.
        self.reference = NumberReservoir(max(QUANTILE_SAMPLE_SIZE, sample_size), name)

    def add(self, values: FloatArray) -> None:
        finite = values[~np.isnan(values)]
        self.missing += len(values) - len(finite)
        self.moments.add(finite)
        self.reference.add(finite)

    def result(self, bins: int) -> NumericFeatureBaseline:
        reference = self.reference.values()
        edges = [-np.inf, np.inf]
        proportions = [0.0]
        if len(reference):
            interior = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            edges = [-np.inf, *np.unique(interior).tolist(), np.inf]
            which = np.searchsorted(np.array(edges), reference, side="right") - 1
            counts = np.bincount(which, minlength=len(edges) - 1)
            proportions = (counts / len(reference)).tolist()
        moments = self.moments
        known = moments.count > 0
        return NumericFeatureBaseline(
            name=self.name,
            count=moments.count,
            missing_count=self.missing,
            edges=tuple(edges),
            proportions=tuple(proportions),
            minimum=moments.minimum if known else None,
            maximum=moments.maximum if known else None,
            mean=moments.mean if known else None,
            std=moments.std if known else None,
            sample=tuple(self.reference.subsample(self.sample_size).tolist()),
        )


class _CategoricalAccumulator:
    def __init__(self, name: str, sample_size: int) -> None:
        self.name = name
        self.missing = 0
        self.counter = CategoryCounter(MAX_TRACKED_CATEGORIES)
        self.sample = TextReservoir(sample_size, f"{name}:sample")

    def add(self, values: list[str | None]) -> None:
        present = (
            [v for v in values if v is not None] if None in values else cast(list[str], values)
        )
        self.missing += len(values) - len(present)
        self.counter.add(present)
        self.sample.add(present)

    def add_coded(self, feature: CodedFeature) -> None:
        # Texts numbered in order of first appearance, as Counter would meet them.
        numbers: dict[str, int] = {}
        text_of = np.array(
            [
                -1 if text is None else numbers.setdefault(text, len(numbers))
                for text in feature.texts
            ],
            dtype=np.intp,
        )
        rows = text_of[feature.codes]
        present = rows[rows >= 0]
        self.missing += len(rows) - len(present)
        counts = np.bincount(present, minlength=len(numbers)).tolist()
        self.counter.add_counts(zip(numbers, counts, strict=True))
        self.sample.add_numbered(present, list(numbers))

    def result(self) -> CategoricalFeatureBaseline:
        top, other = self.counter.top(MAX_CATEGORIES)
        total = sum(count for _, count in top) + other
        share = (lambda count: count / total) if total else (lambda count: 0.0)
        return CategoricalFeatureBaseline(
            name=self.name,
            count=total,
            missing_count=self.missing,
            categories=tuple(value for value, _ in top),
            proportions=tuple(share(count) for _, count in top),
            other_proportion=share(other),
            unseen_proportion=0.0,
            sample=tuple(self.sample.values()),
        )
