"""A past window of one model's logged rows, from SQLite or Elasticsearch alike.

`open_log_rows(store_url, model, window)` checks what can be checked before a single row
is written (the model is known to the log, the window holds rows) and gives the columns,
the row count (for a progress bar) and the rows in batches (`exporter.store.rows`).
Failures a user can act on raise `LogRowsError` with a message saying what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exporter.store.base import StoreUnavailable
from exporter.store.rows import LoggedColumns, RowBatch
from stats_service.offline.errors import OfflineError
from stats_service.offline.past_window import PastWindow

LabelKind = Literal["number", "text"]


class LogRowsError(OfflineError):
    """An unknown model, an empty window, a store that cannot be read."""


@dataclass(frozen=True)
class LogRows:
    model: str
    window: PastWindow
    columns: LoggedColumns
    rows: int  # in the window (at most window.rows for a row window)
    label_kind: LabelKind | None  # the ground truth's type; None when none has arrived
    batches: Iterator[RowBatch]


@contextlib.contextmanager
def open_log_rows(
    store_url: str, model: str, window: PastWindow, **elasticsearch_options: Any
) -> Iterator[LogRows]:
    """`elasticsearch_options`: ElasticsearchConfig fields (index_prefix, api_key, ...)."""
    try:
        if store_url.startswith("sqlite:"):
            with _sqlite_rows(store_url, model, window) as rows:
                yield rows
        else:
            with _elasticsearch_rows(store_url, model, window, elasticsearch_options) as rows:
                yield rows
    except StoreUnavailable as exc:
        raise LogRowsError(f"the input log cannot be read: {exc}") from exc


@contextlib.contextmanager
def _sqlite_rows(store_url: str, model: str, window: PastWindow) -> Iterator[LogRows]:
    from exporter.store.sqlite import rows as sqlite_rows
    from exporter.store.sqlite.errors import unavailable_on_adbc_error
    from exporter.store.sqlite.read import list_models

    path = Path(store_url.removeprefix("sqlite:///"))
    connection = sqlite_rows.open_read_only(store_url)  # one snapshot: layouts, counts, rows
    batches: Generator[RowBatch] | None = None
    try:
        with unavailable_on_adbc_error(path):
            models = list_models(connection)
            if model not in models:
                raise LogRowsError(_unknown(model, store_url, models))
            start, end, after = window.start_ts, window.end_ts, None
            if window.rows is not None:
                after = sqlite_rows.newest_start(connection, model, window.rows, end)
            counted = sqlite_rows.window_count(connection, model, start, end, after=after)
            if counted.rows == 0:
                raise LogRowsError(_empty(model, window))
            columns = sqlite_rows.logged_columns(connection, model)
        batches = _guarded(sqlite_rows.iter_rows(connection, model, start, end, after=after), path)
        yield LogRows(
            model=model,
            window=window,
            columns=columns,
            rows=counted.rows,
            label_kind=counted.label_kind,
            batches=batches,
        )
    finally:
        if batches is not None:
            batches.close()  # its cursor first: the connection will not close under it
        connection.close()


def _guarded(batches: Iterator[RowBatch], path: Path) -> Generator[RowBatch]:
    from exporter.store.sqlite.errors import unavailable_on_adbc_error

    with unavailable_on_adbc_error(path):
        yield from batches


@contextlib.contextmanager
def _elasticsearch_rows(
    store_url: str, model: str, window: PastWindow, options: dict[str, Any]
) -> Iterator[LogRows]:
    from exporter.store.elasticsearch.rows import ElasticsearchRowReader

    try:
        reader = ElasticsearchRowReader.from_url(store_url, **options)
    except ValueError as exc:
        raise LogRowsError(str(exc)) from exc
    try:
        columns = reader.logged_columns(model)
        if columns is None:
            raise LogRowsError(_unknown(model, store_url, None))
        start, end = window.start_ts, window.end_ts
        if window.rows is not None:
            start = reader.newest_start(model, window.rows, end) or start
        total = reader.count_rows(model, start, end)
        if total == 0:
            raise LogRowsError(_empty(model, window))
        yield LogRows(
            model=model,
            window=window,
            columns=columns,
            rows=total,
            label_kind=reader.label_kind(model, start, end),
            batches=reader.iter_rows(model, start, end, columns),
        )
    finally:
        reader.close()


def _unknown(model: str, store_url: str, known: list[str] | None) -> str:
    listed = ""
    if known is not None:
        listed = f" (models there: {', '.join(known[:20])})" if known else " (it has none yet)"
    return f"model {model!r} has no records in {store_url}{listed}"


def _empty(model: str, window: PastWindow) -> str:
    return f"window {window.spec!r} holds no records of model {model!r}: nothing to write"
