"""The SQLite input log's on-disk format: tables, feature layouts, row encoding.

Shared by the writer (`log.py`) and the window reader (`read.py`).

A window read must not create a Python object per feature value (ARCHITECTURE.md: 1M
rows x 20 REAL columns through `sqlite3` took 6.6 s), and the fewer columns it fetches
per row, the faster it goes. So a model's features are laid out once per schema
version in `layouts`, and each record row carries:
  vector       ONE little-endian BLOB: the timestamp, prediction value and prediction
               score as float64 (copies of their columns), then the layout's numeric
               features as float32, in layout order; NaN = missing. A window becomes
               arrays with one join and one `numpy.frombuffer` per layout version.
  categorical  the categorical features in layout order as one text joined by U+001F,
               a missing value written as U+001E (decoded with one join and one split);
  document     the whole record as JSON (`LogRecord.to_document()`), for people and for
               schemaless models (their rows have `layout` NULL, a vector of the three
               float64 only, and their features only here). Its "label" is left out:
               ground truth comes later, the `label` column is the truth.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from exporter.records import FeatureValue, LabelValue, LogRecord, PredictionValue, StoreColumns

# Bumped when the tables change; stored in PRAGMA user_version. Older files are migrated
# when opened (MIGRATIONS).
FORMAT_VERSION = 3
SEPARATOR = "\x1f"
MISSING = "\x1e"
# A category holding a control character the encoding uses is stored with U+FFFD there.
_SANITIZE = str.maketrans({SEPARATOR: "\ufffd", MISSING: "\ufffd"})

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS layouts (
        model       TEXT NOT NULL,
        version     INTEGER NOT NULL,
        numeric     TEXT NOT NULL,  -- JSON array of names: their order in records.vector
        categorical TEXT NOT NULL,  -- JSON array of names: the order of records.categorical
        created     REAL NOT NULL,
        PRIMARY KEY (model, version)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS records (
        id               TEXT PRIMARY KEY,  -- request_id:row
        model            TEXT NOT NULL,
        model_version    TEXT NOT NULL,
        ts               REAL NOT NULL,     -- epoch seconds
        status           INTEGER NOT NULL,
        prediction_value REAL,
        prediction_label TEXT,
        prediction_score REAL,
        label,                              -- no type: text, integer or real as posted
        issues           TEXT,              -- JSON array, NULL when none
        layout           INTEGER,           -- layouts.version, NULL: document only
        vector           BLOB NOT NULL,     -- see the module's documentation
        categorical      TEXT,              -- NULL when there is no categorical feature
        role             TEXT NOT NULL DEFAULT 'primary',  -- records.ROLES
        candidate        TEXT NOT NULL DEFAULT '',         -- route name; '' for the primary
        protocol         TEXT NOT NULL DEFAULT '',  -- the protocol the sidecar parsed (replay)
        probabilities    TEXT,              -- JSON object class -> probability, NULL when none
        label_ts         REAL,              -- epoch seconds when the label arrived
        document         TEXT NOT NULL      -- last: window reads never need it
    )""",
    # Covering: a window read walks this index alone, in (model, ts) order, and never
    # the table with its large documents (which took a third of a 1M-row fetch); the
    # route of a row is in it, so that leaving shadows out costs no table lookup.
    """CREATE INDEX IF NOT EXISTS records_window
        ON records (model, ts, role, candidate, layout, vector, categorical,
                    prediction_label, label, probabilities, label_ts)""",
    # Ground truth that arrived before its record, joined in when the record comes.
    """CREATE TABLE IF NOT EXISTS pending_labels (
        id    TEXT PRIMARY KEY,
        label NOT NULL,
        ts    REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pending_labels_ts ON pending_labels (ts)",
)
# From the format of a PRAGMA user_version to the next one; run before SCHEMA.
MIGRATIONS = {
    1: (
        "ALTER TABLE records ADD COLUMN role TEXT NOT NULL DEFAULT 'primary'",
        "ALTER TABLE records ADD COLUMN candidate TEXT NOT NULL DEFAULT ''",
        "DROP INDEX IF EXISTS records_window",  # SCHEMA creates it with the route in it
    ),
    2: (
        "ALTER TABLE records ADD COLUMN protocol TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE records ADD COLUMN probabilities TEXT",
        "ALTER TABLE records ADD COLUMN label_ts REAL",
        # Rows logged before: their protocol is in the document only.
        "UPDATE records SET protocol = coalesce(json_extract(document, '$.protocol'), '')",
        "DROP INDEX IF EXISTS records_window",  # SCHEMA creates it with the new columns
    ),
}
UPSERT = """
INSERT INTO records (id, model, model_version, ts, status, prediction_value,
    prediction_label, prediction_score, label, issues, layout, vector, categorical, role,
    candidate, protocol, probabilities, label_ts, document)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    model = excluded.model, model_version = excluded.model_version, ts = excluded.ts,
    status = excluded.status, prediction_value = excluded.prediction_value,
    prediction_label = excluded.prediction_label, prediction_score = excluded.prediction_score,
    label = coalesce(excluded.label, records.label), issues = excluded.issues,
    layout = excluded.layout, vector = excluded.vector, categorical = excluded.categorical,
    label_ts = CASE WHEN records.label IS NULL THEN excluded.label_ts ELSE records.label_ts END,
    role = excluded.role, candidate = excluded.candidate, protocol = excluded.protocol,
    probabilities = excluded.probabilities, document = excluded.document
"""
_NO_PREDICTION = PredictionValue()


@dataclass(frozen=True)
class Layout:
    model: str
    version: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    def matches(self, columns: StoreColumns) -> bool:
        return self.numeric == columns.numeric and self.categorical == columns.categorical


class Queryable(Protocol):
    """A `sqlite3` connection, or the export's columnar one (`rows.py`): both answer SQL."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


def load_layouts(connection: Queryable, model: str) -> list[Layout]:
    """Every layout version of a model, oldest first."""
    rows = connection.execute(
        "SELECT version, numeric, categorical FROM layouts WHERE model = ? ORDER BY version",
        (model,),
    ).fetchall()
    return [
        Layout(model, version, tuple(json.loads(numeric)), tuple(json.loads(categorical)))
        for version, numeric, categorical in rows
    ]


def insert_layout(
    connection: sqlite3.Connection, columns: StoreColumns, version: int, now: float
) -> Layout:
    connection.execute(
        "INSERT INTO layouts (model, version, numeric, categorical, created) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            columns.model,
            version,
            json.dumps(list(columns.numeric)),
            json.dumps(list(columns.categorical)),
            now,
        ),
    )
    return Layout(columns.model, version, columns.numeric, columns.categorical)


def to_number(value: FeatureValue) -> float:
    """A numeric feature value as stored: anything that is not a number is missing."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan


def vector_dtype(width: int) -> np.dtype[np.void]:
    """A row's vector with `width` numeric features: packed, little-endian."""
    fields: list[tuple[Any, ...]] = [("ts", "<f8"), ("value", "<f8"), ("score", "<f8")]
    if width:
        fields.append(("numeric", "<f4", (width,)))
    return np.dtype(fields)


def record_rows(
    records: Sequence[LogRecord],
    layouts: Mapping[str, Layout],
    pending: Mapping[str, tuple[LabelValue, float]],
) -> list[tuple[Any, ...]]:
    """The records as UPSERT parameters; `pending` holds labels (and when they arrived)
    that came before them."""
    rows: list[tuple[Any, ...]] = []
    for record, (layout, vector, text) in zip(records, _encode(records, layouts), strict=True):
        document = record.to_document()
        document.pop("label", None)  # the label column is the truth: it may come later
        prediction = record.prediction or _NO_PREDICTION
        label, label_ts = (
            (record.label, record.timestamp)
            if record.label is not None
            else pending.get(record.id, (None, None))
        )
        probabilities = prediction.probabilities
        rows.append(
            (
                record.id,
                record.model,
                record.model_version,
                record.timestamp,
                record.status,
                prediction.value,
                prediction.label,
                prediction.score,
                label,
                json.dumps(list(record.issues)) if record.issues else None,
                None if layout is None else layout.version,
                vector,
                text,
                record.role,
                record.candidate,
                record.protocol,
                orjson.dumps(dict(probabilities)).decode() if probabilities else None,
                label_ts,
                # Features are floats, text or None (no label here): orjson encodes them all.
                orjson.dumps(document).decode(),
            )
        )
    return rows


def _encode(
    records: Sequence[LogRecord], layouts: Mapping[str, Layout]
) -> list[tuple[Layout | None, bytes, str | None]]:
    """Per record: its model's layout (None: none prepared), vector and categorical text."""
    encoded: list[tuple[Layout | None, bytes, str | None]] = [(None, b"", None)] * len(records)
    by_model: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_model.setdefault(record.model, []).append(index)
    for model, indices in by_model.items():
        layout = layouts.get(model)
        group = [records[i] for i in indices]
        vectors = _encode_vectors(group, () if layout is None else layout.numeric)
        for index, record, vector in zip(indices, group, vectors, strict=True):
            text = None
            if layout is not None and layout.categorical:
                text = _encode_categorical(record, layout.categorical)
            encoded[index] = (layout, vector, text)
    return encoded


def _encode_vectors(records: Sequence[LogRecord], names: tuple[str, ...]) -> list[bytes]:
    """The records' vectors, built for the whole batch at once through numpy."""
    packed = np.zeros(len(records), dtype=vector_dtype(len(names)))
    predictions = [record.prediction or _NO_PREDICTION for record in records]
    # numpy turns None into NaN by itself when it fills a float array.
    packed["ts"] = [record.timestamp for record in records]
    packed["value"] = [prediction.value for prediction in predictions]
    packed["score"] = [prediction.score for prediction in predictions]
    if names:
        rows = [[record.features.get(name) for name in names] for record in records]
        try:
            matrix = np.array(rows, dtype=np.float64).reshape(len(records), len(names))
        except (TypeError, ValueError):  # a text where a number belongs
            matrix = np.array([[to_number(v) for v in row] for row in rows], dtype=np.float64)
        with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as numpy casts
            packed["numeric"] = matrix.reshape(len(records), len(names))
    raw, width = packed.tobytes(), packed.dtype.itemsize
    return [raw[start : start + width] for start in range(0, len(raw), width)]


def _encode_categorical(record: LogRecord, names: tuple[str, ...]) -> str:
    return SEPARATOR.join([_category_text(record.features.get(name)) for name in names])


def _category_text(value: FeatureValue) -> str:
    if value is None:
        return MISSING
    text = value if isinstance(value, str) else str(value)
    if SEPARATOR in text or MISSING in text:
        return text.translate(_SANITIZE)
    return text


def decode_categorical(
    texts: Sequence[str], width: int, known: dict[str, str | None]
) -> list[list[str | None]]:
    """The columns of `width` categorical features from their joined texts, one per row.

    `known` maps each text seen so far to one shared object (and MISSING to None):
    a window holds each category once, however many rows carry it.
    """
    if not texts or not width:
        return [[] for _ in range(width)]
    known.setdefault(MISSING, None)
    parts = SEPARATOR.join(texts).split(SEPARATOR)
    return [list(map(known.setdefault, parts[j::width], parts[j::width])) for j in range(width)]
