"""Streaming reads of whole logged rows from the SQLite input log, for `export`.

The window reader (`read.py`) gives the statistics columns of a window at once; an export
needs every row as logged, request id and route included, in bounded batches whatever
the window's size. Features come from the packed vectors and categorical texts
(`format.py`), mapped into the model's newest layout by name; rows written before the
model had a layout take theirs from the document.

No document is read for a row that has a layout: the model version and protocol are
columns, and the request id and row come from the record id, `request_id:row` (a shadow's
id has a suffix, but shadows are never exported), split by Arrow for the whole batch.
Text columns reach `RowBatch` as Arrow arrays, built from the fetched tuples without a
Python object per value.

Rows come oldest first, ties on the timestamp by insertion order; a shadow's rows (a copy
of the primary's inputs) are left out, as from every window (`read.route_filter`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporter.store.base import StoreUnavailable
from exporter.store.rows import BATCH_ROWS, FloatArray, LoggedColumns, RowBatch
from exporter.store.sqlite.errors import unavailable_on_transient
from exporter.store.sqlite.format import (
    FORMAT_VERSION,
    MISSING,
    SEPARATOR,
    Layout,
    load_layouts,
    vector_dtype,
)
from exporter.store.sqlite.log import URL_PREFIX
from exporter.store.sqlite.read import _collector_paused, decode_layouts, route_filter

LabelKind = Literal["number", "text"]
# The version and route of a model's rows: one value over most of them. SQLite answers
# NULL for the window's first row's value (a None costs the sqlite3 module no new text
# per row, which took a tenth of the fetch) and Arrow fills it back in: the columns are
# NOT NULL, so a NULL means that value and nothing else.
_REPEATING = ("model_version", "protocol", "role", "candidate")


def open_read_only(url: str, *, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """The sidecar's file, read-only (the sidecar may be writing it: WAL readers never
    wait). Raises StoreUnavailable when there is no such file or it is not set up yet.
    Any one thread may read it at a time (an export fetches in a thread of its own)."""
    path = Path(url.removeprefix(URL_PREFIX))
    if path == Path(url) or not str(path) or "?" in url:
        raise ValueError(f"input log URL {url!r}: expected sqlite:///path/to/file.db")
    if not path.is_file():
        raise StoreUnavailable(f"SQLite input log {path}: no such file")
    with unavailable_on_transient(path):
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=busy_timeout_s,
            check_same_thread=False,
        )
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version != FORMAT_VERSION:
        connection.close()
        raise StoreUnavailable(
            f"SQLite input log {path}: format {version}, expected {FORMAT_VERSION}"
        )
    return connection


def logged_columns(connection: sqlite3.Connection, model: str) -> LoggedColumns:
    layouts = load_layouts(connection, model)
    if not layouts:
        return LoggedColumns()
    return LoggedColumns(layouts[-1].numeric, layouts[-1].categorical)


@dataclass(frozen=True)
class WindowCount:
    rows: int
    # Whether the ground truth holds a text ("text"), only numbers ("number") or nothing
    # (None): a typed file needs the column's type before its first row.
    label_kind: LabelKind | None


def window_count(
    connection: sqlite3.Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    after: tuple[float, int] | None = None,
) -> WindowCount:
    """The rows `iter_rows` gives for the same arguments, counted in the same scan as
    their labels' kind (one pass over the index instead of two)."""
    where, parameters = _window_where(model, start_ts, end_ts, after)
    rows, texts, labels = connection.execute(
        f"SELECT count(*), max(typeof(label) = 'text'), count(label) FROM records WHERE {where}",
        parameters,
    ).fetchone()
    return WindowCount(int(rows), None if not labels else "text" if texts else "number")


def newest_start(
    connection: sqlite3.Connection, model: str, rows: int, end_ts: float
) -> tuple[float, int] | None:
    """(timestamp, rowid) of the oldest of the model's newest `rows` rows before end_ts;
    None when it has fewer (the window is then all of them)."""
    routes, selection = route_filter(None, None)
    found = connection.execute(
        f"SELECT ts, rowid FROM records WHERE model = ? AND ts < ?{routes} "
        "ORDER BY ts DESC, rowid DESC LIMIT 1 OFFSET ?",
        (model, end_ts, *selection, rows - 1),
    ).fetchone()
    return None if found is None else (float(found[0]), int(found[1]))


def iter_rows(
    connection: sqlite3.Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    after: tuple[float, int] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[RowBatch]:
    """Rows with start_ts <= ts < end_ts (from `after`, a `newest_start`, when given) in
    batches of about `batch_rows` (the rows of one timestamp are never split). The caller
    holds one read transaction around it, so that layouts and rows come from one snapshot."""
    layouts: dict[int | None, Layout] = {None: Layout(model, 0, (), ())}
    layouts.update((layout.version, layout) for layout in load_layouts(connection, model))
    newest = layouts[max(layouts, key=lambda version: -1 if version is None else version)]
    where, parameters = _window_where(model, start_ts, end_ts, after)
    usual = connection.execute(
        f"SELECT {', '.join(_REPEATING)} FROM records WHERE {where} ORDER BY ts LIMIT 1",
        parameters,
    ).fetchone() or ("",) * len(_REPEATING)
    # ORDER BY ts alone walks the covering index as it is; adding rowid made SQLite sort
    # every row again (a tenth of the export's time), so ties are put in order here.
    cursor = connection.execute(
        f"SELECT rowid, ts, id, {', '.join(f'nullif({c}, ?)' for c in _REPEATING)}, "
        "prediction_label, label, CASE WHEN layout IS NULL THEN document ELSE layout END, "
        f"vector, categorical FROM records WHERE {where} ORDER BY ts",
        (*usual, *parameters),
    )
    categories: dict[str, str | None] = {}
    held: list[Any] = []
    while True:
        # The collector would walk a batch's row tuples again and again (a sixth of the
        # export's time); they hold no cycles. Paused per batch: not while the caller runs.
        with _collector_paused():
            rows = cursor.fetchmany(batch_rows)
            ready, held = _in_insertion_order(held + rows, complete=not rows)
            batch = _decode(ready, usual, layouts, newest, categories) if ready else None
        if batch is not None:
            yield batch
        if not rows:
            return


def _in_insertion_order(rows: list[Any], *, complete: bool) -> tuple[list[Any], list[Any]]:
    """Rows in timestamp order (rowid and ts first) with ties put in insertion order,
    and the rows of the last timestamp, held back unless `complete`: more of them may
    come with the next fetch."""
    rowid = np.fromiter(map(itemgetter(0), rows), np.int64, len(rows))
    ts = np.fromiter(map(itemgetter(1), rows), np.float64, len(rows))
    ready = len(rows) if complete else int(np.searchsorted(ts, ts[-1]))
    rowid, ts = rowid[:ready], ts[:ready]
    if np.any((ts[1:] == ts[:-1]) & (rowid[1:] < rowid[:-1])):
        return [rows[i] for i in np.lexsort((rowid, ts))], rows[ready:]
    return rows[:ready], rows[ready:]


def _window_where(
    model: str, start_ts: float, end_ts: float, after: tuple[float, int] | None
) -> tuple[str, tuple[Any, ...]]:
    routes, selection = route_filter(None, None)
    bound: str = "ts >= ?"
    parameters: tuple[float, ...] = (start_ts,)
    if after is not None:
        bound, parameters = "(ts > ? OR (ts = ? AND rowid >= ?))", (after[0], after[0], after[1])
    return f"model = ? AND {bound} AND ts < ?{routes}", (model, *parameters, end_ts, *selection)


def _decode(
    rows: list[Any],
    usual: tuple[str, ...],
    layouts: dict[int | None, Layout],
    newest: Layout,
    categories: dict[str, str | None],
) -> RowBatch:
    # One C-level transposition, then Arrow arrays: no Python work per row.
    _, _, ids, *repeating, predicted, label, keys, vectors, texts = zip(*rows, strict=True)
    version, protocol, role, candidate = (
        pc.fill_null(pa.array(column, pa.string()), value)
        for column, value in zip(repeating, usual, strict=True)
    )
    request_id, row = _split_ids(pa.array(ids, pa.string()))
    scalars, numeric, categorical = _features(keys, vectors, texts, layouts, newest, categories)
    return RowBatch(
        timestamp=scalars[0],
        request_id=request_id,
        row=row,
        model_version=version,
        protocol=protocol,
        role=role,
        candidate=candidate,
        prediction_value=scalars[1],
        prediction_label=pa.array(predicted, pa.string()),
        prediction_score=scalars[2],
        label=label,
        numeric={name: numeric[:, j] for j, name in enumerate(newest.numeric)},
        categorical=dict(zip(newest.categorical, categorical, strict=True)),
    )


def _split_ids(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Request ids and rows from record ids `request_id:row` (a request id may hold a
    colon; the row is after the last one)."""
    parts = pc.split_pattern(ids, ":", max_splits=1, reverse=True)
    return pc.list_element(parts, 0), pc.cast(pc.list_element(parts, 1), pa.int64())


def _features(
    keys: tuple[int | str, ...],
    vectors: tuple[bytes, ...],
    texts: tuple[str | None, ...],
    layouts: dict[int | None, Layout],
    newest: Layout,
    categories: dict[str, str | None],
) -> tuple[FloatArray, FloatArray, list[pa.Array]]:
    """Scalars (ts, value, score), the numeric matrix and the categorical columns in the
    newest layout. `keys` are layout versions, or documents for rows without a layout. A
    batch written under the newest layout alone (the usual case) is split by Arrow; other
    rows are mapped by name (`decode_layouts`)."""
    if keys.count(newest.version) != len(keys):
        versions = [key if isinstance(key, int) else None for key in keys]
        documents = [None if isinstance(key, int) else key for key in keys]
        scalars, numeric, columns = decode_layouts(
            versions, vectors, texts, documents, layouts, newest, categories
        )
        return scalars, numeric, [pa.array(column, pa.string()) for column in columns]
    packed = np.frombuffer(b"".join(vectors), dtype=vector_dtype(len(newest.numeric)))
    scalars = np.stack([packed["ts"], packed["value"], packed["score"]])
    numeric = packed["numeric"] if newest.numeric else np.empty((len(packed), 0), np.float32)
    return scalars, numeric, _split_categorical(texts, len(newest.categorical))


def _split_categorical(texts: tuple[str | None, ...], width: int) -> list[pa.Array]:
    """The columns of `width` categorical features from their joined texts
    (`format.decode_categorical`, in Arrow)."""
    if not width:
        return []
    parts = pc.list_flatten(pc.split_pattern(pa.array(texts, pa.string()), SEPARATOR))
    missing = pa.scalar(None, pa.string())
    columns = []
    for j in range(width):
        column = parts.take(pa.array(np.arange(j, len(parts), width)))
        columns.append(pc.if_else(pc.equal(column, MISSING), missing, column))
    return columns
