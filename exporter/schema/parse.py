"""Reading and validating a schema document (see `exporter.schema.definition` for the result).

Every error is one `SchemaError` line: `<file>: <key path>: expected ...; got ...`,
so a wrong schema is fixed from the message alone.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn, cast

from exporter.schema.definition import (
    ARRAY_DERIVES,
    FEATURE_TYPES,
    MAX_NAME_LENGTH,
    TASKS,
    TEXT_DERIVES,
    Feature,
    FeatureType,
    LogMode,
    PredictionSpec,
    Schema,
    SchemaError,
    Source,
    Task,
    scalar_text,
)

_TOP_KEYS = ("model", "features", "prediction")
_FEATURE_KEYS = (
    "name",
    "source",
    "type",
    "nullable",
    "range",
    "categories",
    "log",
    "derive",
    "segment",
)
_PREDICTION_KEYS = ("task", "classes", "output", "threshold")
_SELECTOR_STEP = re.compile(r'\.([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class SchemaParser:
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name

    def fail(self, path: str, message: str) -> NoReturn:
        raise SchemaError(f"{self.source_name}: {path}: {message}")

    def expect(self, path: str, expected: str, got: Any) -> NoReturn:
        self.fail(path, f"expected {expected}; got {describe(got)}")

    def schema(self, document: Any) -> Schema:
        top = "(top level)"
        if not isinstance(document, dict):
            self.expect(top, "a mapping with a 'features' list", document)
        self._check_keys(document, _TOP_KEYS, top)
        model = document.get("model")
        if model is not None and not (isinstance(model, str) and model):
            self.expect("model", "a non-empty string", model)
        if "features" not in document:
            self.fail(top, "missing key 'features' (expected a list of features)")
        raw_features = document["features"]
        if not isinstance(raw_features, list) or not raw_features:
            self.expect("features", "a non-empty list of features", raw_features)
        features = tuple(self._feature(raw, f"features[{i}]") for i, raw in enumerate(raw_features))
        self._check_unique_outputs(features)
        prediction = None
        if document.get("prediction") is not None:
            prediction = self._prediction(document["prediction"], "prediction")
        return Schema(features=features, model=model, prediction=prediction)

    def _check_keys(self, mapping: dict[Any, Any], allowed: tuple[str, ...], path: str) -> None:
        unknown = [key for key in mapping if key not in allowed]
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            self.fail(path, f"unknown key {names}; expected keys among {', '.join(allowed)}")

    def _feature(self, raw: Any, path: str) -> Feature:
        if not isinstance(raw, dict):
            self.expect(path, "a mapping with 'name' and 'type'", raw)
        self._check_keys(raw, _FEATURE_KEYS, path)
        name = self._name(raw.get("name"), f"{path}.name")
        if "type" not in raw:
            self.fail(path, f"missing key 'type' (expected one of {', '.join(FEATURE_TYPES)})")
        kind = raw["type"]
        if kind not in FEATURE_TYPES:
            self.expect(f"{path}.type", f"one of {', '.join(FEATURE_TYPES)}", kind)
        nullable = raw.get("nullable", False)
        if not isinstance(nullable, bool):
            self.expect(f"{path}.nullable", "true or false", nullable)
        return Feature(
            name=name,
            type=kind,
            source=self._source(raw.get("source", name), f"{path}.source"),
            nullable=nullable,
            range=self._range(raw.get("range"), kind, f"{path}.range"),
            categories=self._categories(raw.get("categories"), kind, f"{path}.categories"),
            log=self._log(raw.get("log", "clear"), kind, f"{path}.log"),
            derive=self._derive(raw.get("derive"), kind, f"{path}.derive"),
            segment=self._segment(raw.get("segment", False), kind, f"{path}.segment"),
        )

    def _segment(self, raw: Any, kind: FeatureType, path: str) -> bool:
        if not isinstance(raw, bool):
            self.expect(path, "true or false", raw)
        if raw and kind not in ("categorical", "boolean"):
            self.fail(path, f"segment: true applies to categorical features, not {kind}")
        return raw

    def _name(self, name: Any, path: str) -> str:
        if not isinstance(name, str) or not name or name.strip() != name:
            self.expect(path, "a non-empty string without surrounding spaces", name)
        if len(name) > MAX_NAME_LENGTH or not name.isprintable():
            self.expect(path, f"at most {MAX_NAME_LENGTH} printable characters", name)
        return name

    def _source(self, raw: Any, path: str) -> Source:
        if isinstance(raw, str) and raw:
            return Source("column", raw)
        if not isinstance(raw, dict):
            self.expect(path, "a column name, {tensor: NAME, index: I} or {selector: '$.a.b'}", raw)
        self._check_keys(raw, ("tensor", "index", "selector"), path)
        if ("tensor" in raw) == ("selector" in raw):
            self.fail(path, "expected exactly one of 'tensor' or 'selector'")
        if "selector" in raw:
            return self._selector(raw["selector"], f"{path}.selector")
        tensor = raw["tensor"]
        if not isinstance(tensor, str) or not tensor:
            self.expect(f"{path}.tensor", "a non-empty input name", tensor)
        index = raw.get("index", [])
        steps = index if isinstance(index, list) else [index]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in steps):
            self.expect(f"{path}.index", "a non-negative integer or a list of them", index)
        return Source("tensor", tensor, tuple(steps))

    def _selector(self, text: Any, path: str) -> Source:
        expected = "a selector like '$.a.b', '$.a[0]' or '$[\"a.b\"]' starting with a key"
        if not isinstance(text, str) or not text.startswith("$"):
            self.expect(path, expected, text)
        steps: list[str | int] = []
        position = 1
        while position < len(text):
            match = _SELECTOR_STEP.match(text, position)
            if match is None:
                self.expect(path, expected, text)
            key, index, quoted = match.groups()
            if index is not None:
                steps.append(int(index))
            else:
                steps.append(key if key is not None else json.loads(quoted))
            position = match.end()
        if not steps or not isinstance(steps[0], str):
            self.expect(path, expected, text)
        return Source("selector", steps[0], tuple(steps[1:]))

    def _range(self, raw: Any, kind: FeatureType, path: str) -> tuple[float, float] | None:
        if raw is None:
            return None
        if kind not in ("numeric", "integer"):
            self.fail(path, f"a range applies to numeric and integer features, not {kind}")
        if not (isinstance(raw, list) and len(raw) == 2):
            self.expect(path, "[min, max] with two numbers", raw)
        for i, bound in enumerate(raw):
            if not _is_number(bound):
                self.expect(f"{path}[{i}]", "a number", bound)
        low, high = float(raw[0]), float(raw[1])
        if not (math.isfinite(low) and math.isfinite(high)):
            self.expect(path, "finite numbers", raw)
        if kind == "integer" and not (low.is_integer() and high.is_integer()):
            self.expect(path, "integer bounds for an integer feature", raw)
        if low > high:
            self.fail(path, f"expected min <= max; got min {raw[0]!r} > max {raw[1]!r}")
        return low, high

    def _categories(self, raw: Any, kind: FeatureType, path: str) -> tuple[str, ...] | None:
        if raw is None:
            return None
        if kind != "categorical":
            self.fail(path, f"categories apply to categorical features, not {kind}")
        if not isinstance(raw, list) or not raw:
            self.expect(path, "a non-empty list of categories", raw)
        texts = self._texts(raw, path)
        return tuple(texts)

    def _texts(self, raw: list[Any], path: str) -> list[str]:
        texts: list[str] = []
        for i, value in enumerate(raw):
            text = scalar_text(value) if isinstance(value, str | int | float) else None
            if text is None:
                self.expect(f"{path}[{i}]", "a string or number", value)
            if text in texts:
                self.fail(f"{path}[{i}]", f"duplicate value {text!r}")
            texts.append(text)
        return texts

    def _log(self, raw: Any, kind: FeatureType, path: str) -> LogMode:
        if raw is False or raw == "false":
            return "off"
        if raw not in ("clear", "hash"):
            self.expect(path, "one of clear, hash, false", raw)
        if raw == "hash" and kind != "categorical":
            self.fail(path, f"log: hash applies to categorical features, not {kind}")
        return "clear" if raw == "clear" else "hash"

    def _derive(self, raw: Any, kind: FeatureType, path: str) -> tuple[str, ...]:
        allowed = {"text": TEXT_DERIVES, "array": ARRAY_DERIVES}.get(kind)
        if allowed is None:
            if raw is not None:
                self.fail(path, f"derive applies to text and array features, not {kind}")
            return ()
        if raw is None:
            return allowed
        if not isinstance(raw, list) or not raw:
            self.expect(path, f"a non-empty list among {', '.join(allowed)}", raw)
        for i, item in enumerate(raw):
            if item not in allowed:
                self.expect(f"{path}[{i}]", f"one of {', '.join(allowed)}", item)
            if item in raw[:i]:
                self.fail(f"{path}[{i}]", f"duplicate derive {item!r}")
        return tuple(raw)

    def _check_unique_outputs(self, features: tuple[Feature, ...]) -> None:
        first: dict[str, int] = {}
        for i, feature in enumerate(features):
            if feature.name in first:
                other = first[feature.name]
                self.fail(
                    f"features[{i}].name",
                    f"duplicate feature name {feature.name!r} (also features[{other}])",
                )
            first[feature.name] = i
        owners: dict[str, int] = {}
        for i, feature in enumerate(features):
            for column in feature.outputs():
                if column.name in owners:
                    self.fail(
                        f"features[{i}].name",
                        f"duplicate output name {column.name!r} "
                        f"(already produced by features[{owners[column.name]}])",
                    )
                owners[column.name] = i

    def _prediction(self, raw: Any, path: str) -> PredictionSpec:
        if not isinstance(raw, dict):
            self.expect(path, "a mapping with 'task'", raw)
        self._check_keys(raw, _PREDICTION_KEYS, path)
        task = raw.get("task")
        if task not in TASKS:
            self.expect(f"{path}.task", f"one of {', '.join(TASKS)}", task)
        task = cast(Task, task)
        classes = raw.get("classes", [])
        if not isinstance(classes, list):
            self.expect(f"{path}.classes", "a list of class names", classes)
        class_names = tuple(self._texts(classes, f"{path}.classes"))
        if task == "regression" and class_names:
            self.fail(f"{path}.classes", "classes apply to binary and multiclass tasks")
        if task == "binary" and class_names and len(class_names) != 2:
            self.expect(f"{path}.classes", "exactly 2 classes for a binary task", classes)
        output = raw.get("output")
        if output is not None and not (isinstance(output, str) and output):
            self.expect(f"{path}.output", "the name of a model output", output)
        threshold = raw.get("threshold")
        if threshold is not None and task != "binary":
            self.fail(f"{path}.threshold", f"a threshold applies to binary tasks, not {task}")
        if task == "binary":
            threshold = 0.5 if threshold is None else threshold
            if not (_is_number(threshold) and 0.0 <= threshold <= 1.0):
                self.expect(f"{path}.threshold", "a number between 0 and 1", threshold)
            threshold = float(threshold)
        return PredictionSpec(task=task, classes=class_names, output=output, threshold=threshold)


def parse_schema(mapping: Any, source_name: str) -> Schema:
    """Validate a loaded YAML document; `source_name` prefixes every error message."""
    return SchemaParser(source_name).schema(mapping)
