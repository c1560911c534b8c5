"""Validation of a loaded baseline document, key by key (see `baseline.files` for the format).

The first problem is reported as one line, `<file>: <key path>: expected ...; got ...`.
"""

from __future__ import annotations

import math
from datetime import datetime
from itertools import pairwise
from typing import Any, NoReturn

from exporter.schema import Schema, SchemaError, parse_schema, schema_hash
from exporter.schema.parse import describe
from stats_service.baseline.contents import (
    FORMAT_VERSION,
    Baseline,
    BaselineError,
    CategoricalFeatureBaseline,
    DataInfo,
    FeatureBaseline,
    NumericFeatureBaseline,
    RowSample,
    proportions_ok,
)

FORMAT_NAME = "mlmon-baseline"


class BaselineChecker:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, message: str) -> NoReturn:
        raise BaselineError(f"{self.file}: {path}: {message}")

    def expect(self, path: str, expected: str, got: Any) -> NoReturn:
        self.fail(path, f"expected {expected}; got {describe(got)}")

    def get(self, mapping: dict[str, Any], key: str, path: str) -> Any:
        if key not in mapping:
            self.fail(f"{path}.{key}" if path else key, "missing key")
        return mapping[key]

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.expect(path, "a mapping", value)
        return value

    def integer(self, value: Any, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.expect(path, "a non-negative integer", value)
        return value

    def number(self, value: Any, path: str) -> float:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            self.expect(path, "a finite number", value)
        return float(value)

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.expect(path, "a string", value)
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.expect(path, "a list", value)
        return value

    def numbers(self, value: Any, path: str) -> tuple[float, ...]:
        return tuple(self.number(v, f"{path}[{i}]") for i, v in enumerate(self.items(value, path)))

    def texts(self, value: Any, path: str) -> tuple[str, ...]:
        return tuple(self.text(v, f"{path}[{i}]") for i, v in enumerate(self.items(value, path)))

    def baseline(self, document: Any) -> Baseline:
        doc = self.mapping(document, "(top level)")
        if self.get(doc, "format", "") != FORMAT_NAME:
            self.expect("format", repr(FORMAT_NAME), doc["format"])
        version = self.get(doc, "format_version", "")
        if version != FORMAT_VERSION:
            self.expect(
                "format_version", f"{FORMAT_VERSION} (the version this mlmon reads)", version
            )
        created_at = self.text(self.get(doc, "created_at", ""), "created_at")
        try:
            datetime.fromisoformat(created_at)
        except ValueError:
            self.expect("created_at", "an ISO 8601 time", created_at)
        schema = self._schema(doc)
        sample_size = self.integer(self.get(doc, "sample_size", ""), "sample_size")
        bins = self.integer(self.get(doc, "bins", ""), "bins")
        features = self._features(self.get(doc, "features", ""), schema, sample_size)
        if self.get(doc, "thresholds", "") is not None:
            self.expect(
                "thresholds",
                "null (threshold calibration is not in this format)",
                doc["thresholds"],
            )
        return Baseline(
            format_version=version,
            created_at=created_at,
            schema=schema,
            schema_hash=doc["schema_hash"],
            data=self._data(self.get(doc, "data", "")),
            bins=bins,
            sample_size=sample_size,
            features=features,
            row_sample=self._row_sample(self.get(doc, "row_sample", ""), schema, sample_size),
            issue_counts=self._issue_counts(self.get(doc, "issue_counts", "")),
            prediction=self._optional_feature(
                self.get(doc, "prediction", ""), "prediction", sample_size
            ),
            label=self._optional_feature(self.get(doc, "label", ""), "label", sample_size),
        )

    def _schema(self, doc: dict[str, Any]) -> Schema:
        try:
            schema = parse_schema(self.get(doc, "schema", ""), f"{self.file}: schema")
        except SchemaError as exc:
            raise BaselineError(str(exc)) from exc
        stored = self.text(self.get(doc, "schema_hash", ""), "schema_hash")
        computed = schema_hash(schema)
        if stored != computed:
            self.fail(
                "schema_hash",
                f"expected the hash of the embedded schema, {computed}; got {stored} "
                "(the file was edited or corrupted)",
            )
        return schema

    def _data(self, value: Any) -> DataInfo:
        data = self.mapping(value, "data")
        sha = self.text(self.get(data, "sha256", "data"), "data.sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            self.expect("data.sha256", "64 lowercase hex digits", sha)
        return DataInfo(
            path=self.text(self.get(data, "path", "data"), "data.path"),
            sha256=sha,
            rows=self.integer(self.get(data, "rows", "data"), "data.rows"),
        )

    def _features(
        self, value: Any, schema: Schema, sample_size: int
    ) -> tuple[FeatureBaseline, ...]:
        raw = self.items(value, "features")
        features = tuple(
            self._feature(item, f"features[{i}]", sample_size) for i, item in enumerate(raw)
        )
        expected = [(c.name, c.kind) for c in schema.output_columns()]
        found = [
            (f.name, "numeric" if isinstance(f, NumericFeatureBaseline) else "categorical")
            for f in features
        ]
        if found != expected:
            self.expect("features", f"the schema's output columns {expected}", found)
        return features

    def _optional_feature(self, value: Any, path: str, sample_size: int) -> FeatureBaseline | None:
        return None if value is None else self._feature(value, path, sample_size)

    def _feature(self, value: Any, path: str, sample_size: int) -> FeatureBaseline:
        raw = self.mapping(value, path)
        kind = self.get(raw, "kind", path)
        name = self.text(self.get(raw, "name", path), f"{path}.name")
        count = self.integer(self.get(raw, "count", path), f"{path}.count")
        missing = self.integer(self.get(raw, "missing_count", path), f"{path}.missing_count")
        total = 1.0 if count else 0.0
        if kind == "numeric":
            feature: FeatureBaseline = self._numeric(raw, path, name, count, missing, total)
        elif kind == "categorical":
            feature = self._categorical(raw, path, name, count, missing, total)
        else:
            self.expect(f"{path}.kind", "numeric or categorical", kind)
        if len(feature.sample) > sample_size:
            self.fail(
                f"{path}.sample",
                f"expected at most sample_size ({sample_size}) values; got {len(feature.sample)}",
            )
        return feature

    def _numeric(
        self, raw: dict[str, Any], path: str, name: str, count: int, missing: int, total: float
    ) -> NumericFeatureBaseline:
        edges = self.items(self.get(raw, "edges", path), f"{path}.edges")
        if len(edges) < 2 or edges[0] != "-inf" or edges[-1] != "+inf":
            self.expect(f"{path}.edges", 'a list from "-inf" to "+inf"', edges)
        interior = tuple(
            self.number(edge, f"{path}.edges[{i}]") for i, edge in enumerate(edges[1:-1], start=1)
        )
        if any(a >= b for a, b in pairwise(interior)):
            self.expect(f"{path}.edges", "strictly increasing edges", edges)
        proportions = self.numbers(self.get(raw, "proportions", path), f"{path}.proportions")
        if len(proportions) != len(edges) - 1 or not proportions_ok(proportions, total):
            self.fail(
                f"{path}.proportions",
                f"expected {len(edges) - 1} shares (one per bin) summing to {total:g}; "
                f"got {_shares(proportions)}",
            )
        stats = {}
        for key in ("min", "max", "mean", "std"):
            stat = self.get(raw, key, path)
            stats[key] = None if stat is None and not count else self.number(stat, f"{path}.{key}")
        return NumericFeatureBaseline(
            name=name,
            count=count,
            missing_count=missing,
            edges=(-math.inf, *interior, math.inf),
            proportions=proportions,
            minimum=stats["min"],
            maximum=stats["max"],
            mean=stats["mean"],
            std=stats["std"],
            sample=self.numbers(self.get(raw, "sample", path), f"{path}.sample"),
        )

    def _categorical(
        self, raw: dict[str, Any], path: str, name: str, count: int, missing: int, total: float
    ) -> CategoricalFeatureBaseline:
        categories = self.texts(self.get(raw, "categories", path), f"{path}.categories")
        if len(set(categories)) != len(categories):
            self.expect(f"{path}.categories", "distinct categories", raw["categories"])
        proportions = self.numbers(self.get(raw, "proportions", path), f"{path}.proportions")
        other = self.number(self.get(raw, "other_proportion", path), f"{path}.other_proportion")
        unseen = self.number(self.get(raw, "unseen_proportion", path), f"{path}.unseen_proportion")
        if len(proportions) != len(categories) or not proportions_ok(
            (*proportions, other, unseen), total
        ):
            self.fail(
                f"{path}.proportions",
                f"expected {len(categories)} shares (one per category) that, with "
                f"other_proportion and unseen_proportion, sum to {total:g}; "
                f"got {_shares(proportions)} and {other:g}, {unseen:g}",
            )
        return CategoricalFeatureBaseline(
            name=name,
            count=count,
            missing_count=missing,
            categories=categories,
            proportions=proportions,
            other_proportion=other,
            unseen_proportion=unseen,
            sample=self.texts(self.get(raw, "sample", path), f"{path}.sample"),
        )

    def _row_sample(self, value: Any, schema: Schema, sample_size: int) -> RowSample:
        raw = self.mapping(value, "row_sample")
        columns = self.texts(self.get(raw, "columns", "row_sample"), "row_sample.columns")
        expected = tuple(c.name for c in schema.output_columns() if c.kind == "numeric")
        if columns != expected:
            self.expect(
                "row_sample.columns", f"the numeric output columns {list(expected)}", list(columns)
            )
        rows = self.items(self.get(raw, "rows", "row_sample"), "row_sample.rows")
        if len(rows) > sample_size:
            self.fail(
                "row_sample.rows",
                f"expected at most sample_size ({sample_size}) rows; got {len(rows)}",
            )
        parsed = []
        for i, row in enumerate(rows):
            cells = self.items(row, f"row_sample.rows[{i}]")
            if len(cells) != len(columns):
                self.fail(
                    f"row_sample.rows[{i}]", f"expected {len(columns)} values; got {len(cells)}"
                )
            parsed.append(
                tuple(
                    math.nan if v is None else self.number(v, f"row_sample.rows[{i}][{j}]")
                    for j, v in enumerate(cells)
                )
            )
        return RowSample(columns, tuple(parsed))

    def _issue_counts(self, value: Any) -> dict[str, int]:
        raw = self.mapping(value, "issue_counts")
        return {key: self.integer(count, f"issue_counts[{key!r}]") for key, count in raw.items()}


def _shares(values: tuple[float, ...]) -> str:
    return f"{len(values)} shares summing to {math.fsum(values):.6g}"
