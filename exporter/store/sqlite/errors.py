"""The one place where SQLite's failures become the store's, for its writer and readers.

A busy or locked database, an I/O error, a full disk, a file that cannot be opened just
now: "try later" (`StoreUnavailable`, so the writer spools and the stats service marks
the window `error`). Any other SQLite error is a bug and propagates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.store.base import StoreUnavailable

TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


def is_transient(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # absent on errors not from SQLite
    return code is not None and code & 0xFF in TRANSIENT  # extended codes: low byte


@contextmanager
def unavailable_on_transient(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        if is_transient(exc):
            raise StoreUnavailable(f"SQLite input log {path}: {exc}") from exc
        raise


@contextmanager
def unavailable_on_adbc_error(path: Path) -> Iterator[None]:
    """The same for the export's ADBC connection (`rows.py`), whose driver reports busy,
    I/O and open failures as DB-API operational errors, without SQLite's codes. Imported
    here, not at the top: the sidecar writes through `sqlite3` and never loads the driver."""
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.OperationalError as exc:
        raise StoreUnavailable(f"SQLite input log {path}: {exc}") from exc
