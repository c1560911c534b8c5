"""Streaming reads of whole logged rows from the SQLite input log, for `export`.

The window reader (`read.py`) gives the statistics columns of a window at once; an export
needs every row as logged, request id and route included, in bounded batches whatever
the window's size. Features come from the packed vectors and categorical texts
(`format.py`), mapped into the model's newest layout by name; rows written before the
model had a layout take theirs from the document.

The request id, row, model version and protocol live only in the JSON document. Parsing
whole documents costs more than the rest of the read, so only their head is fetched: the
text before `,"features":`, which `LogRecord.to_document` writes after exactly those
fields. That key cannot occur earlier as text: a quote inside a JSON string is escaped.

Rows come oldest first, ties on the timestamp by insertion order; a shadow's rows (a copy
of the primary's inputs) are left out, as from every window (`read.route_filter`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson

from exporter.store.base import StoreUnavailable
from exporter.store.rows import BATCH_ROWS, LoggedColumns, RowBatch
from exporter.store.sqlite.errors import unavailable_on_transient
from exporter.store.sqlite.format import (
    FORMAT_VERSION,
    Layout,
    load_layouts,
)
from exporter.store.sqlite.log import URL_PREFIX
from exporter.store.sqlite.read import decode_layouts, route_filter

LabelKind = Literal["number", "text"]
_HEAD = "substr(document, 1, instr(document, ',\"features\":'))"


def open_read_only(url: str, *, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """The sidecar's file, read-only (the sidecar may be writing it: WAL readers never
    wait). Raises StoreUnavailable when there is no such file or it is not set up yet."""
    path = Path(url.removeprefix(URL_PREFIX))
    if path == Path(url) or not str(path) or "?" in url:
        raise ValueError(f"input log URL {url!r}: expected sqlite:///path/to/file.db")
    if not path.is_file():
        raise StoreUnavailable(f"SQLite input log {path}: no such file")
    with unavailable_on_transient(path):
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s
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


def label_kind(
    connection: sqlite3.Connection, model: str, start_ts: float, end_ts: float
) -> LabelKind | None:
    """Whether the window's ground truth holds a text ("text"), only numbers ("number"),
    or nothing (None): a typed file needs the column's type before its first row."""
    routes, selection = route_filter(None, None)
    where = f"model = ? AND ts >= ? AND ts < ?{routes}"
    parameters = (model, start_ts, end_ts, *selection)
    found = connection.execute(
        f"SELECT max(typeof(label) = 'text'), count(label) FROM records WHERE {where}",
        parameters,
    ).fetchone()
    if not found[1]:
        return None
    return "text" if found[0] else "number"


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
    batches of at most `batch_rows`. The caller holds one read transaction around it, so
    that layouts and rows come from one snapshot."""
    layouts: dict[int | None, Layout] = {None: Layout(model, 0, (), ())}
    layouts.update((layout.version, layout) for layout in load_layouts(connection, model))
    newest = layouts[max(layouts, key=lambda version: -1 if version is None else version)]
    routes, selection = route_filter(None, None)
    bound = "ts >= ?"
    parameters: tuple[Any, ...] = (start_ts,)
    if after is not None:
        bound = "(ts > ? OR (ts = ? AND rowid >= ?))"
        parameters = (after[0], after[0], after[1])
    cursor = connection.execute(
        f"SELECT {_HEAD}, role, candidate, layout, "
        "CASE WHEN layout IS NULL THEN document END, vector, categorical, "
        "prediction_label, label "
        f"FROM records WHERE model = ? AND {bound} AND ts < ?{routes} ORDER BY ts, rowid",
        (model, *parameters, end_ts, *selection),
    )
    categories: dict[str, str | None] = {}
    while rows := cursor.fetchmany(batch_rows):
        yield _decode(rows, layouts, newest, categories)


def _decode(
    rows: list[Any],
    layouts: dict[int | None, Layout],
    newest: Layout,
    categories: dict[str, str | None],
) -> RowBatch:
    heads, role, candidate, versions, documents, vectors, texts, predicted, label = zip(
        *rows, strict=True
    )
    scalars, numeric, columns = decode_layouts(
        versions, vectors, texts, documents, layouts, newest, categories
    )
    # One parse for the whole batch: a call per row cost twice as much.
    head: list[dict[str, Any]] = orjson.loads("[" + ",".join(map(_head, heads)) + "]")
    return RowBatch(
        timestamp=scalars[0],
        request_id=[h.get("request_id", "") for h in head],
        row=[int(h.get("row", 0)) for h in head],
        model_version=[str(h.get("model_version", "")) for h in head],
        protocol=[h.get("protocol") for h in head],
        role=role,
        candidate=candidate,
        prediction_value=scalars[1],
        prediction_label=predicted,
        prediction_score=scalars[2],
        label=label,
        numeric={name: numeric[:, j] for j, name in enumerate(newest.numeric)},
        categorical=dict(zip(newest.categorical, columns, strict=True)),
    )


def _head(text: str) -> str:
    """The head as a JSON object of its own; `{}` for a document without features (not
    one the sidecar writes)."""
    return text[:-1] + "}" if text else "{}"
