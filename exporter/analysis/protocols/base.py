"""What a protocol adapter receives and returns.

Adapters run in the background worker, after the client already has its answer.
They turn one request/response exchange into input rows and predictions; they
never raise anything but `PayloadError`, whose `reason` is one of a bounded set
so it can be a metric label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Part = Literal["request", "response"]

# Bounded reasons: they become the `reason` label of mlmon_payload_parse_errors_total.
PARSE_ERROR_REASONS = (
    "invalid_json",  # not JSON, truncated JSON, or nested deeper than the parser allows
    "invalid_csv",
    "unsupported_content_type",
    "invalid_shape",  # JSON, but not the protocol's envelope, or shapes that do not add up
    "too_large",  # body above capture_max_bytes: forwarded, not parsed
    "invalid_selector",  # generic adapter: a configured selector matched nothing usable
    # Counted, yet the body is still analysed (what JSON cannot carry is left out):
    "non_finite_number",  # NaN, Infinity or a number past float range (not JSON, RFC 8259)
    "invalid_unicode",  # a lone surrogate escape ("\\ud800"): replaced by U+FFFD
    "invalid_field_name",  # a field name with a NUL or another control character: left out
)


class PayloadError(Exception):
    """A request or response body this protocol cannot read."""

    def __init__(self, part: Part, reason: str, detail: str = "") -> None:
        if reason not in PARSE_ERROR_REASONS:
            raise ValueError(f"unknown parse error reason {reason!r}")
        super().__init__(f"{part}: {reason}: {detail}" if detail else f"{part}: {reason}")
        self.part = part
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Exchange:
    """One proxied request and its response, as bytes; header names lower-case."""

    method: str
    path: str
    query: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes
    # Seeds the choice of rows when a request has more than `AdapterConfig.max_rows`.
    sample_seed: str = ""


@dataclass(frozen=True)
class Prediction:
    """One row's prediction. Any field may be None when the output does not say it.

    value: the numeric output (regression value, or positive-class score for binary);
    label: the predicted class; score: the confidence of `label` (max probability);
    probabilities: class -> probability, when the output gives one per class (what
    estimating a multiclass model's performance without labels needs).
    """

    value: float | None = None
    label: str | None = None
    score: float | None = None
    probabilities: Mapping[str, float] | None = None


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of a tensor whose values are not read (Triton binary data)."""

    name: str
    shape: tuple[int, ...]
    datatype: str


@dataclass(frozen=True)
class ParsedExchange:
    """What the adapter found. `rows[i]` maps input name -> raw JSON value for row i
    (a scalar, or a nested list for a tensor row); `predictions[i]` belongs to row i
    when the counts match."""

    protocol: str
    model: str | None = None
    model_version: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    response_error: PayloadError | None = None  # rows are kept when only the response is bad
    # (part, reason) of what was read despite not being valid JSON (see `load_json`)
    notes: tuple[tuple[Part, str], ...] = ()
    # Rows in the request; `rows` holds all of them, or the sample `row_numbers` names.
    total_rows: int = 0
    row_numbers: tuple[int, ...] | None = None


@dataclass(frozen=True)
class AdapterConfig:
    """The parts of the sidecar settings adapters read."""

    class_names: tuple[str, ...] = ()
    # For a single numeric output per row: "regression" keeps it as a value,
    # "binary" also derives label/score with `threshold`. "auto": regression.
    task: Literal["auto", "regression", "binary", "multiclass"] = "auto"
    threshold: float = 0.5
    # generic adapter: JSONPath-like selectors ("$.a.b[*].c")
    rows_selector: str = ""
    predictions_selector: str = ""
    model_selector: str = ""
    version_selector: str = ""
    # Rows of one request to read (0: all); the others are sampled out (see RowSample).
    max_rows: int = 0


@dataclass(frozen=True)
class RequestPart:
    """What an adapter reads from a request body."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    model: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class ResponsePart:
    """What an adapter reads from a 2xx response body."""

    predictions: list[Prediction] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    model: str | None = None
    model_version: str | None = None


def predictions_from_outputs(values: Sequence[Any], config: AdapterConfig) -> list[Prediction]:
    """Interpret per-row model outputs, whatever their form:
    number -> value (and label/score for a binary task), string -> label,
    list of numbers -> class probabilities (label = argmax, score = max),
    {"label"/"class", "score"/"probability", "value"} dict -> as named.
    """
    return [_one_prediction(v, config) for v in values]


_NUMBER_TYPES = frozenset({int, float})  # what json.loads gives; bool excluded
# Classes named by index ("0".."n-1") when the schema lists none: past this many, a row of
# numbers is an embedding or a tensor, not class probabilities, and is not kept per class.
MAX_CLASSES = 50


def _one_prediction(value: Any, config: AdapterConfig) -> Prediction:
    if isinstance(value, bool):
        return Prediction(value=float(value), label=str(value).lower())
    if isinstance(value, int | float):
        number = float(value)
        if config.task == "binary" and math.isfinite(number):
            positive = number >= config.threshold
            names = config.class_names or ("0", "1")
            return Prediction(
                value=number,
                label=names[1] if positive else names[0],
                score=number if positive else 1.0 - number,
            )
        if config.task == "multiclass" and number.is_integer():
            return Prediction(value=number, label=_class_name(int(number), config))
        return Prediction(value=number)
    if isinstance(value, str):
        return Prediction(label=value)
    # Set and map calls keep the per-element work of a probability row in C.
    if (
        isinstance(value, list)
        and value
        and (set(map(type, value)) <= _NUMBER_TYPES or all(_is_number(x) for x in value))
    ):
        if len(value) == 1:
            return _one_prediction(value[0], config)
        scores = list(map(float, value))
        if not all(map(math.isfinite, scores)):
            return Prediction(value=math.nan)
        top = max(scores)
        positive_score = scores[1] if len(scores) == 2 else None
        return Prediction(
            value=positive_score,
            label=_class_name(scores.index(top), config),
            score=top,
            probabilities=class_probabilities(
                config.class_names or _index_names(len(scores)), scores
            ),
        )
    if isinstance(value, dict):
        label = value.get("label", value.get("class"))
        score = value.get("score", value.get("probability"))
        return Prediction(
            value=_as_float(value.get("value")),
            label=None if label is None else str(label),
            score=_as_float(score),
        )
    return Prediction()


def class_probabilities(names: Sequence[str], scores: Sequence[float]) -> dict[str, float] | None:
    """Class -> probability, when `scores` can be one per class of `names`: as many, at
    least two, at most MAX_CLASSES, each finite and in [0, 1]. Else None (logits, an
    output of another shape, more values than the schema has classes)."""
    if not 2 <= len(scores) <= MAX_CLASSES or len(scores) != len(names):
        return None
    if not all(0.0 <= s <= 1.0 for s in scores):  # NaN fails both comparisons
        return None
    return dict(zip(names, scores, strict=True))


@lru_cache(maxsize=MAX_CLASSES)
def _index_names(count: int) -> tuple[str, ...]:
    # The spelling of `canonical_label` for class indices, so live names match the
    # baseline's `proba_<class>` columns.
    return tuple(map(str, range(count)))


def _class_name(index: int, config: AdapterConfig) -> str:
    if 0 <= index < len(config.class_names):
        return config.class_names[index]
    return str(index)


def _as_float(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Protocol:
    """One wire protocol, whole: the paths it answers and how both sides are read.

    `inference`: the inference call's path (groups `model` and `version` optional; None:
    only when the settings force this protocol); `control`: its servers' health,
    metadata and management paths, never parsed even when the protocol is forced.
    """

    name: str
    inference: re.Pattern[str] | None
    control: re.Pattern[str] | None
    parse_request: Callable[[Exchange, AdapterConfig], RequestPart]
    parse_response: Callable[[Exchange, AdapterConfig], ResponsePart]
