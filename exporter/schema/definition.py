"""The feature schema of one model: what each feature is, where it is read, how it is logged.

One YAML file per model, shared by the baseline builder (training data) and the sidecar
(serving traffic) so both compute features with the very same definitions. The YAML is
validated by `exporter.schema.parse`; this module holds the frozen result and its
canonical form (`schema_to_dict`, `schema_hash`); `exporter.schema.files` reads files.

Output columns: numeric, integer and boolean/categorical features produce one value under
their own name. Derived features produce several, named `<feature>.<derive>`:
text -> `length_chars` (characters) and `length_tokens` (whitespace-separated tokens);
array -> `size` (number of elements, all dimensions), `mean`, `std` (population),
`min`, `max` of the elements. For an image tensor, `mean` is its brightness.
Booleans are categorical with the values "true" / "false".
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

FeatureType = Literal["numeric", "integer", "boolean", "categorical", "text", "array"]
FEATURE_TYPES: tuple[FeatureType, ...] = (
    "numeric",
    "integer",
    "boolean",
    "categorical",
    "text",
    "array",
)
# YAML `log: false` is stored as "off".
LogMode = Literal["clear", "hash", "off"]
OutputKind = Literal["numeric", "categorical"]
Task = Literal["regression", "binary", "multiclass"]
TASKS: tuple[Task, ...] = ("regression", "binary", "multiclass")
TEXT_DERIVES = ("length_chars", "length_tokens")
ARRAY_DERIVES = ("size", "mean", "std", "min", "max")
MAX_NAME_LENGTH = 100

# A selector step that may be written `.name`; anything else is written `["name"]`.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-:@]+")


class SchemaError(ValueError):
    """A schema that cannot be used; the message names the file, the key and the problem."""


class OutputColumn(NamedTuple):
    name: str
    kind: OutputKind


@dataclass(frozen=True)
class Source:
    """Where a feature's raw value is in a row.

    kind "column": `row[field]`; "tensor": `row[field][i][j]...` with `path` the index
    (empty: the whole tensor row); "selector": `row[field]` then `path`'s keys/indexes.
    """

    kind: Literal["column", "tensor", "selector"]
    field: str
    path: tuple[str | int, ...] = ()

    def selector_text(self) -> str:
        steps = [self.field, *self.path]
        return "$" + "".join(_selector_step(step) for step in steps)


def _selector_step(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    if _PLAIN_KEY.fullmatch(step):
        return f".{step}"
    return f"[{json.dumps(step, ensure_ascii=False)}]"


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    source: Source
    nullable: bool = False
    range: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    log: LogMode = "clear"
    derive: tuple[str, ...] = ()
    # Categorical only: each window is also evaluated per value (the largest ones).
    segment: bool = False

    def outputs(self) -> list[OutputColumn]:
        if self.type in ("numeric", "integer"):
            return [OutputColumn(self.name, "numeric")]
        if self.type in ("boolean", "categorical"):
            return [OutputColumn(self.name, "categorical")]
        return [OutputColumn(f"{self.name}.{derive}", "numeric") for derive in self.derive]


@dataclass(frozen=True)
class PredictionSpec:
    task: Task
    classes: tuple[str, ...] = ()
    output: str | None = None
    # Binary only: the score at or above which the positive class is predicted.
    threshold: float | None = None


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]
    model: str | None = None
    prediction: PredictionSpec | None = None

    def output_columns(self) -> list[OutputColumn]:
        """Every value the features produce, in schema order."""
        return [column for feature in self.features for column in feature.outputs()]

    def logged_names(self) -> list[str]:
        """Output columns the log writer may store (hashed ones already hold hashes)."""
        return [
            column.name
            for feature in self.features
            if feature.log != "off"
            for column in feature.outputs()
        ]

    def read_fields(self) -> frozenset[str]:
        """Top-level row fields some feature reads."""
        return frozenset(feature.source.field for feature in self.features)

    def hashed_features(self) -> list[str]:
        return [feature.name for feature in self.features if feature.log == "hash"]


def schema_to_dict(schema: Schema) -> dict[str, Any]:
    """The canonical, fully explicit form (defaults filled in); `parse_schema` reads it back."""
    document: dict[str, Any] = {}
    if schema.model is not None:
        document["model"] = schema.model
    document["features"] = [_feature_to_dict(feature) for feature in schema.features]
    if schema.prediction is not None:
        document["prediction"] = _prediction_to_dict(schema.prediction)
    return document


def schema_hash(schema: Schema) -> str:
    """sha256 (hex) of the canonical JSON of `schema_to_dict`: equal schemas, equal hashes."""
    canonical = json.dumps(
        schema_to_dict(schema),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _feature_to_dict(feature: Feature) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": feature.name,
        "source": _source_to_dict(feature.source),
        "type": feature.type,
        "nullable": feature.nullable,
    }
    if feature.range is not None:
        low, high = feature.range
        out["range"] = [int(low), int(high)] if feature.type == "integer" else [low, high]
    if feature.categories is not None:
        out["categories"] = list(feature.categories)
    out["log"] = False if feature.log == "off" else feature.log
    if feature.derive:
        out["derive"] = list(feature.derive)
    if feature.segment:  # only when set: older schemas keep their hash
        out["segment"] = True
    return out


def _source_to_dict(source: Source) -> str | dict[str, Any]:
    if source.kind == "column":
        return source.field
    if source.kind == "tensor":
        tensor: dict[str, Any] = {"tensor": source.field}
        if source.path:
            index = list(source.path)
            tensor["index"] = index[0] if len(index) == 1 else index
        return tensor
    return {"selector": source.selector_text()}


def _prediction_to_dict(prediction: PredictionSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"task": prediction.task}
    if prediction.classes:
        out["classes"] = list(prediction.classes)
    if prediction.output is not None:
        out["output"] = prediction.output
    if prediction.threshold is not None:
        out["threshold"] = prediction.threshold
    return out


# Floats up to 2**53 render like the integer they equal, so a category "3" is the same
# whether it arrived as 3 (JSON), 3.0 (JSON) or "3" (a CSV cell read as a number).
_EXACT_INT_LIMIT = 2.0**53


def scalar_text(value: Any) -> str | None:
    """The category text of a scalar; None for a missing value (None, NaN).

    Raises TypeError for values that are not scalars (lists, mappings).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) <= _EXACT_INT_LIMIT:
            return str(int(value))
        return repr(value)
    raise TypeError(f"not a scalar: {type(value).__name__}")
