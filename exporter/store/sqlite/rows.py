"""Streaming reads of whole logged rows from the SQLite input log, for `export`.

The window reader (`read.py`) gives the statistics columns of a window at once; an export
needs every row as logged, request id and route included, in bounded batches whatever
the window's size. Features come from the packed vectors and categorical texts
(`format.py`), mapped into the model's newest layout by name; rows written before the
model had a layout take theirs from the document.

Rows are fetched as Arrow record batches through ADBC's SQLite driver, not the `sqlite3`
module: a million rows of the export's columns came as tuples in 2.8 s of CPU, a Python
object per value, against 1.8 s as columns. The packed vectors are read out of the binary
column's buffer and the record ids split by Arrow: nothing is done per row in Python.
The driver links its own copy of SQLite; two copies in one process must not hold the
same file open at once (closing one's descriptor drops the other's POSIX locks), so an
export reads through this connection alone, from the first query to the last.

Rows come oldest first, ties on the timestamp by insertion order; a shadow's rows (a copy
of the primary's inputs) are left out, as from every window (`read.route_filter`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from adbc_driver_sqlite import dbapi as adbc_sqlite

from exporter.records import LabelValue
from exporter.store.base import StoreUnavailable
from exporter.store.rows import BATCH_ROWS, FloatArray, LoggedColumns, RowBatch
from exporter.store.sqlite.errors import unavailable_on_adbc_error
from exporter.store.sqlite.format import (
    FORMAT_VERSION,
    MISSING,
    SEPARATOR,
    Layout,
    load_layouts,
    vector_dtype,
)
from exporter.store.sqlite.log import URL_PREFIX
from exporter.store.sqlite.read import decode_layouts, route_filter

Connection = adbc_sqlite.AdbcSqliteConnection
LabelKind = Literal["number", "text"]
_BATCH_ROWS_OPTION = "adbc.sqlite.query.batch_rows"
# The driver types each column by the values of its first rows: an all-NULL start reads
# as integers, and a text after it fails the query. One row of the right types leads.
_TYPED_ROW = (
    "SELECT 0 AS rowid, 0.0 AS ts, '' AS id, '' AS model_version, '' AS protocol, "
    "'' AS role, '' AS candidate, '' AS prediction_label, '' AS label_text, "
    "0 AS label_integer, 0.0 AS label_real, 0 AS layout, '' AS document, x'' AS vector, "
    "'' AS categorical"
)
# `label` has no type: one column per kind it can hold, so that each has one Arrow type.
_ROWS = (
    "SELECT rowid, ts, id, model_version, protocol, role, candidate, prediction_label, "
    "CASE typeof(label) WHEN 'text' THEN label END, "
    "CASE typeof(label) WHEN 'integer' THEN label END, "
    "CASE typeof(label) WHEN 'real' THEN label END, "
    "layout, CASE WHEN layout IS NULL THEN document END, vector, categorical "
    "FROM records WHERE {where} ORDER BY ts"
)


def open_read_only(url: str, *, busy_timeout_s: float = 5.0) -> Connection:
    """The sidecar's file, read-only (the sidecar may be writing it: WAL readers never
    wait), in one read transaction until closed: every query sees one snapshot. Raises
    StoreUnavailable when there is no such file or it is not set up yet. Any one thread
    may use it at a time (an export fetches in a thread of its own)."""
    path = Path(url.removeprefix(URL_PREFIX))
    if path == Path(url) or not str(path) or "?" in url:
        raise ValueError(f"input log URL {url!r}: expected sqlite:///path/to/file.db")
    if not path.is_file():
        raise StoreUnavailable(f"SQLite input log {path}: no such file")
    with unavailable_on_adbc_error(path):
        connection = adbc_sqlite.connect(f"{path.resolve().as_uri()}?mode=ro")
        try:
            connection.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
            (version,) = connection.execute("PRAGMA user_version").fetchone() or (None,)
        except BaseException:
            connection.close()
            raise
    if version != FORMAT_VERSION:
        connection.close()
        raise StoreUnavailable(
            f"SQLite input log {path}: format {version}, expected {FORMAT_VERSION}"
        )
    return connection


def logged_columns(connection: Connection, model: str) -> LoggedColumns:
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
    connection: Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    after: tuple[float, int] | None = None,
) -> WindowCount:
    """The rows `iter_rows` gives for the same arguments, counted in the same scan as
    their labels' kind (one pass over the index instead of two)."""
    where, parameters = _window_where(model, start_ts, end_ts, after)
    counted = connection.execute(
        f"SELECT count(*), max(typeof(label) = 'text'), count(label) FROM records WHERE {where}",
        parameters,
    ).fetchone()
    assert counted is not None  # an aggregate answers one row
    rows, texts, labels = counted
    return WindowCount(int(rows), None if not labels else "text" if texts else "number")


def newest_start(
    connection: Connection, model: str, rows: int, end_ts: float
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
    connection: Connection,
    model: str,
    start_ts: float,
    end_ts: float,
    *,
    after: tuple[float, int] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[RowBatch]:
    """Rows with start_ts <= ts < end_ts (from `after`, a `newest_start`, when given) in
    batches of about `batch_rows` (the rows of one timestamp are never split). Layouts and
    rows come from the connection's one snapshot."""
    layouts: dict[int | None, Layout] = {None: Layout(model, 0, (), ())}
    layouts.update((layout.version, layout) for layout in load_layouts(connection, model))
    newest = layouts[max(layouts, key=lambda version: -1 if version is None else version)]
    where, parameters = _window_where(model, start_ts, end_ts, after)
    categories: dict[str, str | None] = {}
    with connection.cursor() as cursor:
        cursor.adbc_statement.set_options(**{_BATCH_ROWS_OPTION: str(batch_rows)})
        # ORDER BY ts alone walks the covering index as it is; adding rowid made SQLite
        # sort every row again (a tenth of the export's time): ties are put in order here.
        cursor.execute(
            f"{_TYPED_ROW} UNION ALL SELECT * FROM ({_ROWS.format(where=where)})", parameters
        )
        held: pa.RecordBatch | None = None
        for fetched in cursor.fetch_record_batch():
            if held is None:
                rows = fetched.slice(1)  # the typed row
            else:
                rows = _concatenated(held, fetched) if len(held) else fetched
            ready, held = _in_insertion_order(rows, complete=False)
            if len(ready):
                yield _decode(ready, layouts, newest, categories)
        if held is not None and len(held):
            ready, _ = _in_insertion_order(held, complete=True)
            yield _decode(ready, layouts, newest, categories)


def _concatenated(first: pa.RecordBatch, second: pa.RecordBatch) -> pa.RecordBatch:
    return pa.Table.from_batches([first, second]).combine_chunks().to_batches()[0]


def _in_insertion_order(
    rows: pa.RecordBatch, *, complete: bool
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Rows in timestamp order with ties put in insertion order, and the rows of the last
    timestamp, held back unless `complete`: more of them may come with the next fetch."""
    rowid = rows.column("rowid").to_numpy()
    ts = rows.column("ts").to_numpy()
    ready = len(rows) if complete or not len(rows) else int(np.searchsorted(ts, ts[-1]))
    rowid, ts = rowid[:ready], ts[:ready]
    head, rest = rows.slice(0, ready), rows.slice(ready)
    if np.any((ts[1:] == ts[:-1]) & (rowid[1:] < rowid[:-1])):
        return head.take(pa.array(np.lexsort((rowid, ts)))), rest
    return head, rest


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
    rows: pa.RecordBatch,
    layouts: dict[int | None, Layout],
    newest: Layout,
    categories: dict[str, str | None],
) -> RowBatch:
    request_id, row = _split_ids(rows.column("id"))
    scalars, numeric, categorical = _features(rows, layouts, newest, categories)
    return RowBatch(
        timestamp=scalars[0],
        request_id=request_id,
        row=row,
        model_version=rows.column("model_version"),
        protocol=rows.column("protocol"),
        role=rows.column("role"),
        candidate=rows.column("candidate"),
        prediction_value=scalars[1],
        prediction_label=rows.column("prediction_label"),
        prediction_score=scalars[2],
        label=_labels(
            rows.column("label_text"), rows.column("label_integer"), rows.column("label_real")
        ),
        numeric={name: numeric[:, j] for j, name in enumerate(newest.numeric)},
        categorical=dict(zip(newest.categorical, categorical, strict=True)),
    )


def _labels(text: pa.Array, integer: pa.Array, real: pa.Array) -> list[LabelValue | None]:
    """The ground truth as stored (an integer stays one), from its column per kind."""
    kinds = [column for column in (text, integer, real) if column.null_count < len(column)]
    if len(kinds) <= 1:  # the usual case: one kind of label per model
        only: list[LabelValue | None] = (kinds[0] if kinds else real).to_pylist()
        return only
    return [
        t if t is not None else i if i is not None else r
        for t, i, r in zip(text.to_pylist(), integer.to_pylist(), real.to_pylist(), strict=True)
    ]


def _split_ids(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Request ids and rows from record ids `request_id:row` (a request id may hold a
    colon; the row is after the last one)."""
    parts = pc.split_pattern(ids, ":", max_splits=1, reverse=True)
    return pc.list_element(parts, 0), pc.cast(pc.list_element(parts, 1), pa.int64())


def _features(
    rows: pa.RecordBatch,
    layouts: dict[int | None, Layout],
    newest: Layout,
    categories: dict[str, str | None],
) -> tuple[FloatArray, FloatArray, list[pa.Array]]:
    """Scalars (ts, value, score), the numeric matrix and the categorical columns in the
    newest layout. A batch written under the newest layout alone (the usual case) is read
    out of Arrow's buffers; other rows are mapped by name (`decode_layouts`), rows without
    a layout from their documents."""
    versions = rows.column("layout")
    if versions.null_count or pc.any(pc.not_equal(versions, newest.version)).as_py():
        scalars, numeric, columns = decode_layouts(
            versions.to_pylist(),
            rows.column("vector").to_pylist(),
            rows.column("categorical").to_pylist(),
            rows.column("document").to_pylist(),
            layouts,
            newest,
            categories,
        )
        return scalars, numeric, [pa.array(column, pa.string()) for column in columns]
    packed = _packed(rows.column("vector"), vector_dtype(len(newest.numeric)))
    scalars = np.stack([packed["ts"], packed["value"], packed["score"]])
    numeric = packed["numeric"] if newest.numeric else np.empty((len(packed), 0), np.float32)
    return scalars, numeric, _split_categorical(rows.column("categorical"), len(newest.categorical))


def _packed(vectors: pa.BinaryArray, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Vectors of one layout (one size), in place in the column's data buffer."""
    _, offsets_buffer, data = vectors.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[
        vectors.offset : vectors.offset + len(vectors) + 1
    ]
    if offsets[-1] - offsets[0] != len(vectors) * dtype.itemsize:
        raise ValueError(f"packed vectors: expected {dtype.itemsize} bytes each")
    return np.frombuffer(data, dtype, len(vectors), int(offsets[0]))


def _split_categorical(texts: pa.Array, width: int) -> list[pa.Array]:
    """The columns of `width` categorical features from their joined texts
    (`format.decode_categorical`, in Arrow)."""
    if not width:
        return []
    parts = pc.list_flatten(pc.split_pattern(texts, SEPARATOR))
    missing = pa.scalar(None, pa.string())
    columns = []
    for j in range(width):
        column = parts.take(pa.array(np.arange(j, len(parts), width)))
        columns.append(pc.if_else(pc.equal(column, MISSING), missing, column))
    return columns
