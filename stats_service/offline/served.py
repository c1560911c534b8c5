"""Baselines from served features: what the model saw in production, not the training file.

An export (`offline.export`) holds features as the sidecar logged them, after its feature
code: a derived column (`text.length_chars`) is already computed, a `log: hash` category
already hashed, a `log: false` feature absent. Running the model's schema over it again
would look for the raw inputs, so an export is read through `served_schema`: one plain
feature per logged column, with the schema's own type, range and vocabulary where the
column is the feature itself (a hashed column keeps no vocabulary: its values are hashes).

`baseline --store` writes the window to a temporary Parquet export and builds from it with
`build_served_baseline`, the very function `baseline --data export.parquet` calls, so the
two give the same baseline (only `created_at` and `data.path` differ).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from exporter.schema import Feature, Schema, Source, schema_hash
from stats_service.baseline.build import BuildProgress, build_baseline
from stats_service.baseline.contents import Baseline, DataInfo
from stats_service.offline.export import RECORD_COLUMNS, export_format, is_export

LABEL_COLUMN = "label"


def served_schema(schema: Schema) -> Schema:
    features: list[Feature] = []
    for feature in schema.features:
        if feature.log == "off":
            continue
        plain = len(feature.outputs()) == 1 and feature.outputs()[0].name == feature.name
        for column in feature.outputs():
            if plain and feature.type != "boolean":
                kind = feature.type
            else:
                kind = "numeric" if column.kind == "numeric" else "categorical"
            features.append(
                Feature(
                    name=column.name,
                    type=kind,
                    source=Source("column", column.name),
                    nullable=feature.nullable if plain else True,
                    range=feature.range if plain else None,
                    categories=feature.categories if plain and feature.log == "clear" else None,
                )
            )
    return Schema(features=tuple(features), model=schema.model, prediction=schema.prediction)


def file_is_export(path: Path) -> bool:
    """Whether `path` is an `export` file (by its leading columns)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return is_export(pq.read_schema(path).names)
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return is_export(next(csv.reader(handle), []))
    return False


def prediction_column(schema: Schema, path: Path) -> str:
    """The export column that is the prediction: the value for a regression, the class
    for a classifier; without a task in the schema, the class when the model gave any."""
    task = schema.prediction.task if schema.prediction is not None else None
    if task == "regression":
        return "prediction"
    if task is not None:
        return "prediction_label"
    if export_format(path) == "parquet":
        labels = pq.read_table(path, columns=["prediction_label"]).column(0)
    else:
        options = pa_csv.ConvertOptions(include_columns=["prediction_label"])
        labels = pa_csv.read_csv(path, convert_options=options).column(0)
    return "prediction_label" if labels.null_count < len(labels) else "prediction"


def build_served_baseline(
    schema: Schema,
    path: Path,
    *,
    bins: int = 10,
    sample_size: int = 5000,
    progress: Callable[[BuildProgress], None] | None = None,
    data_path: str | None = None,
) -> Baseline:
    """The baseline of an export file, for `schema`'s model; `data_path` names the data in
    the baseline (default: the file)."""
    baseline = build_baseline(
        served_schema(schema),
        path,
        prediction_column=prediction_column(schema, path),
        label_column=LABEL_COLUMN,
        bins=bins,
        sample_size=sample_size,
        progress=progress,
    )
    bookkeeping = {f"unexpected_field:{name}" for name in RECORD_COLUMNS}
    return dataclasses.replace(
        baseline,
        # The model's own schema: the stats service reads live windows by its names, and
        # `report` on raw data computes features through it.
        schema=schema,
        schema_hash=schema_hash(schema),
        data=DataInfo(
            path=data_path or str(path), sha256=baseline.data.sha256, rows=baseline.data.rows
        ),
        issue_counts={k: v for k, v in baseline.issue_counts.items() if k not in bookkeeping},
    )
