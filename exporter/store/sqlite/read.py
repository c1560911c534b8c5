"""Window reads from the SQLite input log, for the stats service.

Rows come from the covering index `records_window`, in chunks; per chunk, each layout
version's vectors become arrays with one join and one `numpy.frombuffer`, and the
categorical texts become columns with one join and one split: no Python object per
feature value. Rows written under an older layout
are mapped into the model's newest layout by name (features it lacks are NaN / None);
rows written before the model had a layout are decoded from their JSON documents (the
slow path, one `json.loads` per such row).
"""

from __future__ import annotations

import gc
import itertools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.records import ROLES, LabelValue
from exporter.store.sqlite.format import (
    Layout,
    decode_categorical,
    load_layouts,
    to_number,
    vector_dtype,
)

FloatArray = npt.NDArray[np.floating[Any]]
# Bounds the memory a read needs besides its result (a chunk's row tuples and bytes).
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Window:
    """The rows of one model in a window, column by column (row i is the same record
    everywhere). `numeric` is float32 (n, len(numeric_names)), NaN = missing. Prediction
    values and scores are float64, NaN = none. Labels come back as stored: a posted
    bool reads as 0 or 1."""

    model: str
    numeric_names: tuple[str, ...]
    numeric: FloatArray
    categorical_names: tuple[str, ...]
    categorical: dict[str, list[str | None]]
    prediction_value: FloatArray
    prediction_score: FloatArray
    prediction_label: list[str | None]
    label: list[LabelValue | None]
    timestamps: FloatArray
    # Class -> each row's probability of it (NaN = not given); empty when no row has one.
    probabilities: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class _Chunk:
    scalars: FloatArray  # (3, n): timestamps, prediction values, prediction scores
    numeric: FloatArray
    categorical: list[list[str | None]]  # in the newest layout's order
    predicted: list[str | None]
    label: list[LabelValue | None]


def read_window(
    connection: sqlite3.Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    max_rows: int | None = None,
    newest_first: bool = False,
    role: str | None = None,
    candidate: str | None = None,
) -> Window:
    """Rows with start_ts <= ts < end_ts, oldest first (newest first if asked, which
    also makes `max_rows` keep the newest rather than the oldest rows). The rows of the
    request's real answers (see `route_filter`) unless a role or candidate is asked for."""
    routes, selection = route_filter(role, candidate)
    # Key None: rows written while the model had no layout (the features: none at all).
    layouts: dict[int | None, Layout] = {None: Layout(model, 0, (), ())}
    layouts.update((layout.version, layout) for layout in load_layouts(connection, model))
    newest = max(layouts, key=lambda version: -1 if version is None else version)
    # Rows without a layout in a model that has one since: their features are in their
    # documents, which come in the layout's place (one column less for every row).
    layout = (
        "layout" if newest is None else "CASE WHEN layout IS NULL THEN document ELSE layout END"
    )
    cursor = connection.execute(
        f"SELECT {layout}, vector, categorical, prediction_label, label "
        f"FROM records WHERE model = ? AND ts >= ? AND ts < ?{routes} "
        f"ORDER BY ts {'DESC' if newest_first else 'ASC'} LIMIT ?",
        (model, start_ts, end_ts, *selection, -1 if max_rows is None else max_rows),
    )
    # Each category and predicted class once per window, however many rows carry it.
    categories: dict[str, str | None] = {}
    classes: dict[str | None, str | None] = {}
    chunks: list[_Chunk] = []
    with _collector_paused():
        while rows := cursor.fetchmany(CHUNK_ROWS):
            chunks.append(_decode(rows, layouts, newest, categories, classes))
    return _window(model, layouts[newest], chunks)


def count_window(
    connection: sqlite3.Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    role: str | None = None,
    candidate: str | None = None,
) -> int:
    routes, selection = route_filter(role, candidate)
    row = connection.execute(
        f"SELECT count(*) FROM records WHERE model = ? AND ts >= ? AND ts < ?{routes}",
        (model, start_ts, end_ts, *selection),
    ).fetchone()
    return int(row[0])


def route_filter(role: str | None, candidate: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its parameters) selecting rows by the route that answered.

    By default every row but the shadows': a shadow's row repeats the inputs of the
    primary's, and a window counting both would count each request twice. A role (one of
    ROLES) and a candidate (a route's configured name) select exactly those rows."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    clause = " AND role != 'shadow'" if role is None else " AND role = ?"
    selection: tuple[str, ...] = () if role is None else (role,)
    if candidate is not None:
        clause += " AND candidate = ?"
        selection += (candidate,)
    return clause, selection


def list_models(connection: sqlite3.Connection) -> list[str]:
    """Models with rows, in name order: a skip scan over the (model, ts) index that
    costs one index seek per model, not a pass over every row."""
    rows = connection.execute(
        "WITH RECURSIVE m(model) AS ("
        " SELECT min(model) FROM records"
        " UNION ALL"
        " SELECT (SELECT min(model) FROM records WHERE model > m.model) FROM m"
        " WHERE m.model IS NOT NULL"
        ") SELECT model FROM m WHERE model IS NOT NULL"
    ).fetchall()
    return [model for (model,) in rows]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A million fetched row tuples would set off the cyclic garbage collector again and
    again, each pass walking every tuple so far: that doubled the time of a window read.
    The tuples hold no cycles; pausing it is safe."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decode(
    rows: list[Any],
    layouts: dict[int | None, Layout],
    newest: int | None,
    categories: dict[str, str | None],
    classes: dict[str | None, str | None],
) -> _Chunk:
    # One C-level transposition instead of a Python loop over rows.
    keys, vectors, texts, predicted, label = zip(*rows, strict=True)
    predicted_labels: list[str | None] = list(map(classes.setdefault, predicted, predicted))
    target = layouts[newest]
    if keys.count(newest) == len(rows):  # the usual case: one layout, nothing to map
        packed = np.frombuffer(b"".join(vectors), dtype=vector_dtype(len(target.numeric)))
        categorical = decode_categorical(texts, len(target.categorical), categories)
        return _Chunk(
            _scalars(packed), _numeric(packed), categorical, predicted_labels, list(label)
        )
    versions = [key if isinstance(key, int) else None for key in keys]  # else a document
    documents = [None if isinstance(key, int) else key for key in keys]
    scalars, numeric, columns = decode_layouts(
        versions, vectors, texts, documents, layouts, target, categories
    )
    return _Chunk(scalars, numeric, columns, predicted_labels, list(label))


def decode_layouts(
    versions: Sequence[int | None],
    vectors: Sequence[bytes],
    texts: Sequence[Any],  # the categorical column as stored
    documents: Sequence[str | None],
    layouts: dict[int | None, Layout],
    target: Layout,
    categories: dict[str, str | None],
) -> tuple[FloatArray, FloatArray, list[list[str | None]]]:
    """Rows written under several layouts, mapped by name into `target`'s columns: the
    scalars (ts, value, score), the numeric matrix and the categorical columns. Rows of
    version None (written before the model had a layout) take features from `documents`."""
    n = len(versions)
    scalars = np.empty((3, n))
    numeric = np.full((n, len(target.numeric)), np.nan, dtype=np.float32)
    columns: list[list[str | None]] = [[None] * n for _ in target.categorical]
    for version in set(versions):
        layout = layouts[version]
        picked = [i for i, v in enumerate(versions) if v == version]
        packed = np.frombuffer(
            b"".join([vectors[i] for i in picked]), vector_dtype(len(layout.numeric))
        )
        scalars[:, picked] = _scalars(packed)
        into = [j for j, name in enumerate(target.numeric) if name in layout.numeric]
        if into:
            out_of = [layout.numeric.index(target.numeric[j]) for j in into]
            numeric[np.ix_(picked, into)] = _numeric(packed)[:, out_of]
        decoded = decode_categorical(
            [texts[i] for i in picked], len(layout.categorical), categories
        )
        for name, values in zip(layout.categorical, decoded, strict=True):
            if name in target.categorical:
                column = columns[target.categorical.index(name)]
                for i, value in zip(picked, values, strict=True):
                    column[i] = value
        if version is None:  # features only in the documents
            for i in picked:
                features = json.loads(documents[i] or "{}").get("features", {})
                numeric[i] = [to_number(features.get(name)) for name in target.numeric]
                for name, column in zip(target.categorical, columns, strict=True):
                    value = features.get(name)
                    column[i] = value if isinstance(value, str) else None
    return scalars, numeric, columns


def _scalars(packed: npt.NDArray[np.void]) -> FloatArray:
    return np.stack([packed["ts"], packed["value"], packed["score"]])


def _numeric(packed: npt.NDArray[np.void]) -> FloatArray:
    if packed.dtype.names is None or "numeric" not in packed.dtype.names:
        return np.empty((len(packed), 0), dtype=np.float32)
    return np.ascontiguousarray(packed["numeric"]).reshape(len(packed), -1)


def _window(model: str, layout: Layout, chunks: Sequence[_Chunk]) -> Window:
    if not chunks:
        empty = np.empty(0)
        numeric = np.empty((0, len(layout.numeric)), np.float32)
        categorical: dict[str, list[str | None]] = {name: [] for name in layout.categorical}
        return Window(
            model,
            layout.numeric,
            numeric,
            layout.categorical,
            categorical,
            empty,
            empty,
            [],
            [],
            empty,
        )
    scalars = np.concatenate([chunk.scalars for chunk in chunks], axis=1)
    categorical = {
        name: list(itertools.chain.from_iterable(chunk.categorical[j] for chunk in chunks))
        for j, name in enumerate(layout.categorical)
    }
    return Window(
        model=model,
        numeric_names=layout.numeric,
        numeric=np.concatenate([chunk.numeric for chunk in chunks]),
        categorical_names=layout.categorical,
        categorical=categorical,
        prediction_value=scalars[1],
        prediction_score=scalars[2],
        prediction_label=list(itertools.chain.from_iterable(c.predicted for c in chunks)),
        label=list(itertools.chain.from_iterable(chunk.label for chunk in chunks)),
        timestamps=scalars[0],
    )
