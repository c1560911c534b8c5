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
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from exporter.records import ROLES, LabelValue
from exporter.store.probabilities import probability_columns
from exporter.store.sqlite.format import (
    SEPARATOR,
    Layout,
    Queryable,
    decode_categorical,
    load_layouts,
    to_number,
    vector_dtype,
)

FloatArray = npt.NDArray[np.floating[Any]]
# Bounds the memory a read needs besides its result (a chunk's row tuples and bytes; its
# blob exists three times, twice in SQLite, once in Python): a 1M-row window read peaked
# 37 MB above its result at 65,536 rows a chunk, 18 MB at 16,384, in the same time.
CHUNK_ROWS = 16_384
TRANSPOSE_ROWS = 2048


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
    # SQLite reads leave it empty and fill `probability_texts`.
    probabilities: dict[str, FloatArray] = field(default_factory=dict)
    # The `probabilities` column as stored (JSON; None: none), when the read asked for it
    # and a row has one; else empty. Decoding a million objects takes seconds, and an
    # estimate needs at most a sample's: `decode_probabilities` the rows wanted.
    probability_texts: list[str | None] = field(default_factory=list)
    # When each row's label arrived, epoch seconds (NaN: no label, or logged before the
    # format kept it); None: not read, or no row has a label.
    label_ts: FloatArray | None = None

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
    label_ts: FloatArray | None  # None: no row has a label
    probabilities: Sequence[str | None]  # JSON texts as stored

    @property
    def count(self) -> int:
        return len(self.predicted)

    def head(self, rows: int) -> _Chunk:
        return _Chunk(
            self.scalars[:, :rows],
            self.numeric[:rows],
            [column[:rows] for column in self.categorical],
            self.predicted[:rows],
            self.label[:rows],
            None if self.label_ts is None else self.label_ts[:rows],
            self.probabilities[:rows],
        )


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
    probabilities: bool = False,
) -> Window:
    """Rows with start_ts <= ts < end_ts, oldest first (newest first if asked, which
    also makes `max_rows` keep the newest rather than the oldest rows). The rows of the
    request's real answers (see `route_filter`) unless a role or candidate is asked for.
    With `probabilities` (a classifier's window), each class's probabilities too."""
    routes, selection = route_filter(role, candidate)
    # Key None: rows written while the model had no layout (the features: none at all).
    layouts: dict[int | None, Layout] = {None: Layout(model, 0, (), ())}
    layouts.update((layout.version, layout) for layout in load_layouts(connection, model))
    newest = max(layouts, key=lambda version: -1 if version is None else version)
    rows = _Rows(
        connection,
        f"FROM records WHERE model = ? AND ts >= ? AND ts < ?{routes} "
        f"ORDER BY ts {'DESC' if newest_first else 'ASC'} LIMIT ?",
        (model, *selection),
        "probabilities" if probabilities else "NULL",
        layouts,
        newest,
    )
    assembly = _Assembly(layouts[newest])
    with _collector_paused():
        for chunk in _chunks(rows, start_ts, end_ts, max_rows, newest_first):
            assembly.add(chunk)
    return assembly.window(model)


class _Rows:
    """Reads the rows of one window between two timestamps as one `_Chunk`.

    The usual chunk (every row in the newest layout, no label yet) comes back from SQLite
    as a few aggregates: its vectors as one blob, its categorical texts and predicted
    classes as one text each, so no Python object is made per row (that cost more than
    the whole scan of the index). Any other chunk is read again row by row, which the
    same query in the same read transaction returns in the same order."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        where: str,  # FROM, WHERE, ORDER BY and LIMIT: bounds and limit come last
        parameters: tuple[Any, ...],
        probabilities: str,  # the column, or NULL when not read
        layouts: dict[int | None, Layout],
        newest: int | None,
    ) -> None:
        self.connection, self.where, self.parameters = connection, where, parameters
        self.probabilities, self.layouts, self.newest = probabilities, layouts, newest
        # Each category and predicted class once per window, however many rows carry it.
        self.categories: dict[str, str | None] = {}
        self.classes: dict[str | None, str | None] = {}

    def read(self, start_ts: float, end_ts: float, limit: int) -> _Chunk | None:
        """None when there is no such row."""
        bounds = (*self.parameters[:1], start_ts, end_ts, *self.parameters[1:], limit)
        chunk = None if self.newest is None else self._aggregated(bounds)
        return chunk if chunk is not None else self._row_by_row(bounds)

    def _aggregated(self, bounds: tuple[Any, ...]) -> _Chunk | None:
        """None when the chunk is empty or not the usual one."""
        # Probabilities as one text too, '' for a row without: JSON never holds a raw
        # char(31) (orjson escapes control characters), so the split aligns with the rows.
        given = (
            "NULL"
            if self.probabilities == "NULL"
            else "group_concat(coalesce(probabilities, ''), char(31))"
        )
        (count, vectors, texts, others, predicted_count, predicted, sparse, probabilities) = (
            self.connection.execute(
                "SELECT count(*), CAST(group_concat(vector, x'') AS BLOB), "
                "group_concat(categorical, char(31)), sum(layout IS NOT ?), "
                "count(prediction_label), group_concat(prediction_label, char(31)), "
                # label_ts is set with a label only: no label, nothing to read row by row.
                f"count(label), {given} "
                "FROM (SELECT layout, vector, categorical, prediction_label, label, "
                f"{self.probabilities} {self.where})",
                (self.newest, *bounds),
            ).fetchone()
        )
        target = self.layouts[self.newest]
        width = len(target.categorical)
        if not count or others or sparse or (width and texts is None):
            return None
        # Texts never hold the separator (the writer replaces it), so a NULL text shows as
        # columns too short; predicted classes may hold it, hence their own count.
        categorical = decode_categorical([texts] if width else [], width, self.categories)
        if any(len(column) != count for column in categorical):
            return None
        labels: list[str | None] = [None] * count
        if predicted_count:
            parts = predicted.split(SEPARATOR) if predicted_count == count else []
            if len(parts) != count:
                return None
            labels = list(map(self.classes.setdefault, parts, parts))
        dtype = vector_dtype(len(target.numeric))
        if len(vectors) != count * dtype.itemsize:
            return None
        stored: list[str | None] = [None] * count
        if probabilities is not None:
            stored = [text or None for text in probabilities.split(SEPARATOR)]
            if len(stored) != count:
                return None
        packed = np.frombuffer(vectors, dtype=dtype)
        return _Chunk(
            _scalars(packed),
            _numeric(packed),
            categorical,
            labels,
            [None] * count,
            None,
            stored,
        )

    def _row_by_row(self, bounds: tuple[Any, ...]) -> _Chunk | None:
        # Rows without a layout in a model that has one since: their features are in
        # their documents, which come in the layout's place (one column less every row).
        layout = (
            "layout"
            if self.newest is None
            else "CASE WHEN layout IS NULL THEN document ELSE layout END"
        )
        rows = self.connection.execute(
            f"SELECT {layout}, vector, categorical, prediction_label, label, label_ts, "
            f"{self.probabilities} {self.where}",
            bounds,
        ).fetchall()
        if not rows:
            return None
        return _decode(rows, self.layouts, self.newest, self.categories, self.classes)


def _chunks(
    rows: _Rows, start_ts: float, end_ts: float, max_rows: int | None, newest_first: bool
) -> Iterator[_Chunk]:
    """The window in chunks of about CHUNK_ROWS rows, each starting where the last ended.

    A chunk ends at a timestamp, so a full chunk drops its last rows that share one, and
    the next chunk starts with all of them: rows with the same timestamp may come in any
    order, so a LIMIT can cut between them. A timestamp with more rows than a chunk
    doubles the chunk until it fits."""
    size = CHUNK_ROWS
    remaining = -1 if max_rows is None else max_rows  # -1: no limit
    while remaining != 0:
        limit = size if remaining < 0 else min(size, remaining)
        chunk = rows.read(start_ts, end_ts, limit)
        if chunk is None:
            return
        if chunk.count < limit or chunk.count == remaining:  # the window ends here
            yield chunk
            return
        timestamps = chunk.scalars[0]
        edge = float(timestamps[-1])
        keep = chunk.count - int(np.count_nonzero(timestamps == edge))
        if keep == 0:
            size *= 2
            continue
        yield chunk.head(keep)
        remaining = remaining - keep if remaining > 0 else remaining
        if newest_first:
            end_ts = float(np.nextafter(edge, np.inf))  # ts < end_ts: up to edge itself
        else:
            start_ts = edge


class _Assembly:
    """The chunks of a window as one, without holding the window twice: its arrays grow
    in place (`ndarray.resize` reallocates, and the C library moves a large block's
    pages rather than copying them), where concatenating the chunks at the end would
    need room for both the chunks and the result.

    The numeric matrix is assembled column by column (Fortran order): the statistics
    read it a feature at a time, and a column of a row-major 1M x 20 float32 matrix
    costs a pass over all of it (20 columns took 370 ms, the transposition here 50)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.rows = 0
        self.capacity = CHUNK_ROWS
        self.width = len(layout.numeric)
        self.scalars = np.empty((CHUNK_ROWS, 3))  # row-major: grows by rows
        self.columns = np.empty(self.width * CHUNK_ROWS, np.float32)  # column j at j*capacity
        self.label_ts: FloatArray | None = None  # until a chunk has a label
        self.categorical: list[list[str | None]] = [[] for _ in layout.categorical]
        self.predicted: list[str | None] = []
        self.label: list[LabelValue | None] = []
        self.probabilities: list[str | None] = []

    def add(self, chunk: _Chunk) -> None:
        start, end = self.rows, self.rows + chunk.count
        if end > self.capacity:
            self._resize(max(2 * self.capacity, end))
        self.scalars[start:end] = chunk.scalars.T
        if chunk.label_ts is not None and self.label_ts is None:
            self.label_ts = np.full(self.capacity, np.nan)
        if self.label_ts is not None:
            self.label_ts[start:end] = np.nan if chunk.label_ts is None else chunk.label_ts
        grid = self.columns.reshape(self.width, self.capacity)
        # Transposed in blocks that stay in the CPU's cache.
        for block in range(0, chunk.count, TRANSPOSE_ROWS):
            rows = chunk.numeric[block : block + TRANSPOSE_ROWS]
            grid[:, start + block : start + block + len(rows)] = rows.T
        del grid  # no view may outlive a resize
        for column, values in zip(self.categorical, chunk.categorical, strict=True):
            column.extend(values)
        self.predicted.extend(chunk.predicted)
        self.label.extend(chunk.label)
        self.probabilities.extend(chunk.probabilities)
        self.rows = end

    def window(self, model: str) -> Window:
        layout = self.layout
        if not self.rows:
            empty = np.empty(0)
            return Window(
                model,
                layout.numeric,
                np.empty((0, self.width), np.float32),
                layout.categorical,
                {name: [] for name in layout.categorical},
                empty,
                empty,
                [],
                [],
                empty,
            )
        self._resize(self.rows)
        texts = self.probabilities
        return Window(
            model=model,
            numeric_names=layout.numeric,
            numeric=self.columns.reshape(self.width, self.rows).T,
            categorical_names=layout.categorical,
            categorical=dict(zip(layout.categorical, self.categorical, strict=True)),
            prediction_value=self.scalars[:, 1],
            prediction_score=self.scalars[:, 2],
            prediction_label=self.predicted,
            label=self.label,
            timestamps=self.scalars[:, 0],
            probability_texts=[] if texts.count(None) == len(texts) else texts,
            label_ts=self.label_ts,
        )

    def _resize(self, capacity: int) -> None:
        # No view of these arrays exists outside `add`'s statements: refcheck can be off.
        self.scalars.resize((capacity, 3), refcheck=False)
        if self.label_ts is not None:
            self.label_ts.resize(capacity, refcheck=False)
        old, rows, columns = self.capacity, self.rows, self.columns
        if capacity < old:  # columns move down first, then the tail goes
            for j in range(1, self.width):
                columns[j * capacity : j * capacity + rows] = columns[j * old : j * old + rows]
        columns.resize(self.width * capacity, refcheck=False)
        if capacity > old:  # the last column first: none overwrites one not yet moved
            for j in range(self.width - 1, 0, -1):
                columns[j * capacity : j * capacity + rows] = columns[j * old : j * old + rows]
        self.capacity = capacity


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


def list_models(connection: Queryable) -> list[str]:
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
    keys, vectors, texts, predicted, label, label_ts, probabilities = zip(*rows, strict=True)
    arrived = np.array(label_ts, dtype=np.float64)  # None -> NaN
    predicted_labels: list[str | None] = list(map(classes.setdefault, predicted, predicted))
    target = layouts[newest]
    if keys.count(newest) == len(rows):  # the usual case: one layout, nothing to map
        packed = np.frombuffer(b"".join(vectors), dtype=vector_dtype(len(target.numeric)))
        categorical = decode_categorical(texts, len(target.categorical), categories)
        return _Chunk(
            _scalars(packed),
            _numeric(packed),
            categorical,
            predicted_labels,
            list(label),
            arrived,
            probabilities,
        )
    versions = [key if isinstance(key, int) else None for key in keys]  # else a document
    documents = [None if isinstance(key, int) else key for key in keys]
    scalars, numeric, columns = decode_layouts(
        versions, vectors, texts, documents, layouts, target, categories
    )
    return _Chunk(scalars, numeric, columns, predicted_labels, list(label), arrived, probabilities)


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


def decode_probabilities(texts: list[str | None]) -> dict[str, FloatArray]:
    """Stored `probabilities` as one array per class, NaN where a row has none."""
    if texts.count(None) == len(texts):  # not asked for, or none given: no JSON, no loop
        return {}
    given = [i for i, text in enumerate(texts) if text is not None]
    # One parse for the window's objects rather than one call per row.
    objects = [text for text in texts if text is not None]
    parsed = orjson.loads("[" + ",".join(objects) + "]")
    columns: dict[str, FloatArray] = {**probability_columns(parsed, given, len(texts))}
    return columns


def _scalars(packed: npt.NDArray[np.void]) -> FloatArray:
    return np.stack([packed["ts"], packed["value"], packed["score"]])


def _numeric(packed: npt.NDArray[np.void]) -> FloatArray:
    if packed.dtype.names is None or "numeric" not in packed.dtype.names:
        return np.empty((len(packed), 0), dtype=np.float32)
    return packed["numeric"].reshape(len(packed), -1)  # a view: `_Assembly` copies it
