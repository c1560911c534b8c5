"""The logged records: one per input row, built from an analysed batch.

Privacy: nothing from request headers is logged (so no Authorization, cookies or
other credentials); `log: false` features are left out and `log: hash` ones are
already hashed by the feature code. Without a schema, fields whose names look like
credentials (`looks_secret`) are logged as keyed hashes too. A record whose features
pass `record_max_bytes` keeps only their size and hash. Sampling keeps every row of
an exchange or none, and always keeps errors and rows with data-quality issues.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.analysis.analyzer import AnalysedBatch, AnalysedExchange
from exporter.analysis.protocols.base import (
    Prediction,
)
from exporter.analysis.schemas import SchemaSet
from exporter.features.compute import FeatureBatch, hash_value
from exporter.names import looks_secret
from exporter.records import PRIMARY, SHADOW, FeatureValue, LogRecord, PredictionValue, StoreColumns
from exporter.schema import scalar_text

# Schemaless rows are flattened boundedly: a client must not make records unbounded.
MAX_FIELDS = 200
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 1024
_MAX_DEPTH = 8


@dataclass(frozen=True)
class RecordPolicy:
    sample_rate: float = 1.0
    record_max_bytes: int = 64 * 1024
    default_version: str = ""
    # Hashes the values of schemaless fields named like credentials.
    secret_key: bytes = b""


def store_columns(schemas: SchemaSet, model: str) -> StoreColumns | None:
    """The logged feature layout of a model with a schema."""
    schema = schemas.for_model(model)
    if schema is None:
        return None
    logged = set(schema.logged_names())
    names: dict[str, list[str]] = {"numeric": [], "categorical": []}
    for column in schema.output_columns():
        if column.name in logged:
            names[column.kind].append(column.name)
    return StoreColumns(model, tuple(names["numeric"]), tuple(names["categorical"]))


def build_records(
    batch: AnalysedBatch, schemas: SchemaSet, versions: Mapping[str, str], policy: RecordPolicy
) -> list[LogRecord]:
    records: list[LogRecord] = []
    for exchange in batch.exchanges:
        features = batch.features_of(exchange)
        columns = store_columns(schemas, exchange.model) if features is not None else None
        rows = _row_features(exchange, features, columns, policy.secret_key)
        issues = _row_issues(exchange, features, len(rows))
        if not _sampled(exchange, issues, policy.sample_rate):
            continue
        item, parsed = exchange.item, exchange.parsed
        version = _version(exchange, versions, policy)
        # A shadow's record never replaces the real answer's: an id of its own.
        suffix = f":shadow:{item.candidate}" if item.role == SHADOW else ""
        predictions = parsed.predictions if len(parsed.predictions) == len(rows) else []
        classes = _schema_classes(schemas, exchange.model)
        for index, values in enumerate(rows):
            row = exchange.row_number(index)
            records.append(
                LogRecord(
                    id=f"{item.request_id}:{row}{suffix}",
                    timestamp=item.received_at,
                    request_id=item.request_id,
                    row=row,
                    model=exchange.model,
                    model_version=version,
                    protocol=item.protocol,
                    status=item.status,
                    latency_ms=item.latency_s * 1000.0,
                    features=_capped(values, policy.record_max_bytes),
                    issues=issues[index],
                    prediction=_prediction(predictions[index], classes) if predictions else None,
                    role=item.role,
                    candidate=item.candidate,
                )
            )
    return records


def _version(exchange: AnalysedExchange, versions: Mapping[str, str], policy: RecordPolicy) -> str:
    """The primary's: the path's, the response's, the one learned, the setting's. Another
    route's: what its response says, else the path's, else the route's configured name
    (never the primary's, which it is not)."""
    item, parsed = exchange.item, exchange.parsed
    if item.role != PRIMARY:
        return parsed.model_version or item.path_version or item.candidate
    return (
        item.path_version
        or parsed.model_version
        or versions.get(exchange.model)
        or policy.default_version
    )


def _row_features(
    exchange: AnalysedExchange,
    features: FeatureBatch | None,
    columns: StoreColumns | None,
    secret_key: bytes,
) -> list[dict[str, FeatureValue]]:
    parsed = exchange.parsed
    if features is not None and columns is not None:
        start = exchange.first_row
        rows: list[dict[str, FeatureValue]] = []
        for index in range(start, start + len(parsed.rows)):
            values: dict[str, FeatureValue] = {
                name: _number(float(features.numeric[name][index])) for name in columns.numeric
            }
            for name in columns.categorical:
                values[name] = features.categorical[name][index]
            rows.append(values)
        return rows
    if parsed.rows:
        return [flatten_row(row, secret_key) for row in parsed.rows]
    if parsed.tensors:  # Triton binary data: shapes and dtypes only
        described: dict[str, FeatureValue] = {}
        for tensor in parsed.tensors:
            described[f"{tensor.name}.shape"] = "x".join(str(d) for d in tensor.shape)
            described[f"{tensor.name}.datatype"] = tensor.datatype
        return [described]
    return []


def _row_issues(
    exchange: AnalysedExchange, features: FeatureBatch | None, n_rows: int
) -> list[list[str]]:
    if features is None:
        return [[] for _ in range(n_rows)]
    start = exchange.first_row
    return features.issues[start : start + n_rows]


def _sampled(exchange: AnalysedExchange, issues: list[list[str]], rate: float) -> bool:
    if rate >= 1.0 or exchange.item.status >= 400 or any(issues):
        return True
    # By request id, so that every row of a request is kept or none is.
    digest = hashlib.blake2b(exchange.item.request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def flatten_row(row: Mapping[str, Any], secret_key: bytes) -> dict[str, FeatureValue]:
    """A schemaless row as scalar values under dotted names, bounded in width and size;
    values of fields named like credentials as keyed hashes."""
    out: dict[str, FeatureValue] = {}
    _flatten(row, "", out, 0, secret_key)
    return out


def _flatten(mapping: Mapping[str, Any], prefix: str, out: dict[str, FeatureValue],
             depth: int, secret_key: bytes) -> None:  # fmt: skip
    for key, value in mapping.items():
        if len(out) >= MAX_FIELDS:
            return
        name = f"{prefix}{key}"
        if len(name) > MAX_NAME_LENGTH or not name.isprintable():
            continue
        if isinstance(value, Mapping) and depth < _MAX_DEPTH:
            _flatten(value, f"{name}.", out, depth + 1, secret_key)
        elif _secret(name):
            out[name] = _hashed_scalar(value, secret_key)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[name] = _number(float(value)) if abs(value) < 1e308 else None
        elif isinstance(value, str):
            out[name] = value[:MAX_TEXT_LENGTH]
        elif value is None:
            out[name] = None
        elif isinstance(value, list):
            out[f"{name}.size"] = float(_size(value))


# A row's field names repeat from request to request: decide each once.
_secret = functools.lru_cache(maxsize=4096)(looks_secret)


def _hashed_scalar(value: Any, key: bytes) -> str | None:
    try:
        text = scalar_text(value)
    except TypeError:  # a list or mapping under a credential's name: its size says nothing
        text = json.dumps(value, sort_keys=True, default=str)
    return None if text is None else hash_value(key, text)


def _size(value: list[Any]) -> int:
    if not value or not isinstance(value[0], list):  # a flat list: no walk needed
        return len(value)
    return sum(_size(v) if isinstance(v, list) else 1 for v in value)


def _capped(values: dict[str, FeatureValue], limit: int) -> dict[str, FeatureValue]:
    # An upper bound first: encoding every record just to measure it doubled the cost of
    # logging (numbers take at most 24 characters, a name or text at most 6 per character
    # escaped, plus quotes and separators).
    bound = sum(6 * len(k) + (6 * len(v) if isinstance(v, str) else 24) + 6
                for k, v in values.items())  # fmt: skip
    if bound <= limit:
        return values
    encoded = json.dumps(values, separators=(",", ":")).encode()
    if len(encoded) <= limit:
        return values
    return {"_size": float(len(encoded)), "_sha256": hashlib.sha256(encoded).hexdigest()}


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _prediction(prediction: Prediction, classes: tuple[str, ...]) -> PredictionValue:
    label, probabilities = _named(prediction.label, _finite(prediction.probabilities), classes)
    return PredictionValue(
        value=prediction.value if prediction.value is None else _number(prediction.value),
        label=label,
        score=prediction.score if prediction.score is None else _number(prediction.score),
        probabilities=probabilities,
    )


def _finite(probabilities: Mapping[str, float] | None) -> dict[str, float] | None:
    if not probabilities:
        return None
    kept = {name: p for name, p in probabilities.items() if math.isfinite(p)}
    return kept or None


def _schema_classes(schemas: SchemaSet, model: str) -> tuple[str, ...]:
    schema = schemas.for_model(model)
    return schema.prediction.classes if schema is not None and schema.prediction else ()


def _named(
    label: str | None, probabilities: dict[str, float] | None, classes: tuple[str, ...]
) -> tuple[str | None, dict[str, float] | None]:
    """Class indices ("0".."n-1": what adapters name classes by when the settings'
    `prediction.classes` is empty) named by the schema's classes, so that the record
    matches the baseline's `proba_<class>` columns and labels. Left as they are when a
    class is itself named like an index (no telling which is meant)."""
    index = {str(i): name for i, name in enumerate(classes)}
    if not classes or not index.keys().isdisjoint(classes):
        return label, probabilities
    if probabilities is not None and probabilities.keys() == index.keys():
        probabilities = {index[key]: p for key, p in probabilities.items()}
    return (label if label is None else index.get(label, label)), probabilities
