"""The embedded SQLite input log: the default store, one file, no server.

Several processes share the file: the sidecar's analysis worker writes records, its
/feedback handler may open its own `SqliteLog` to write ground truth, and the stats
service reads windows. WAL mode lets readers run beside the one writer at a time;
every write transaction starts with BEGIN IMMEDIATE, so that a writer waits for the
lock up front (the busy timeout) rather than failing when a read turns into a write.
`synchronous=NORMAL`: a power cut may lose the last commits, never corrupt the file.

Thread safety: one connection per object, guarded by a lock, so an object may be
shared between threads (calls run one at a time).

Retention is by record age (`ts`). Deleted pages are reused, the file does not shrink.
The table layout is in `format.py`, window reads in `read.py`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from exporter.records import GroundTruth, LabelValue, LogRecord, StoreColumns
from exporter.store.sqlite.errors import unavailable_on_transient
from exporter.store.sqlite.format import (
    FORMAT_VERSION,
    MIGRATIONS,
    SCHEMA,
    UPSERT,
    Layout,
    insert_layout,
    load_layouts,
    record_rows,
)
from exporter.store.sqlite.read import (
    Window,
    count_window,
    list_models,
    read_window,
)

__all__ = ["SqliteLog", "Window"]

URL_PREFIX = "sqlite:///"
PURGE_INTERVAL_S = 60.0
_UPSERT_PENDING = """
INSERT INTO pending_labels (id, label, ts) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET label = excluded.label, ts = excluded.ts
"""


class SqliteLog:
    """The InputLog on one SQLite file, plus the window reads of the stats service.

    Opening creates the tables in a new file. Every call, opening included, raises
    StoreUnavailable when the file stays locked past `busy_timeout_s`, on an I/O error
    or a full disk; other errors (a file of another format, a closed log) propagate.
    """

    def __init__(
        self, path: str | Path, *, retention_s: float | None = None, busy_timeout_s: float = 5.0
    ) -> None:
        if retention_s is not None and not retention_s > 0:
            raise ValueError(
                f"retention_s: expected a positive number of seconds or None, got {retention_s!r}"
            )
        if not busy_timeout_s >= 0:
            raise ValueError(f"busy_timeout_s: expected seconds >= 0, got {busy_timeout_s!r}")
        self.path = Path(path)
        self._retention_s = retention_s
        self._next_purge = -math.inf  # time.monotonic(): the first write purges
        self._layouts: dict[str, Layout] = {}  # what this writer prepared, by model
        self._lock = threading.Lock()
        with unavailable_on_transient(self.path):
            self._connection = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                self._set_up()
            except BaseException:
                self._connection.close()
                raise

    @classmethod
    def from_url(
        cls, url: str, *, retention_s: float | None = None, busy_timeout_s: float = 5.0
    ) -> SqliteLog:
        """SQLAlchemy's spelling: "sqlite:///" then the path, so "sqlite:///mlmon.db" and
        "sqlite:///./data/mlmon.db" are relative to the working directory and
        "sqlite:////var/lib/mlmon.db" (four slashes) is absolute."""
        expected = 'expected "sqlite:///relative/path.db" or "sqlite:////absolute/path.db"'
        if not url.startswith(URL_PREFIX):
            raise ValueError(f"input log URL {url!r}: {expected}")
        path = url[len(URL_PREFIX) :]
        if not path or path == ":memory:":
            raise ValueError(f"input log URL {url!r}: {expected} (a file, not in-memory)")
        if "?" in path:
            raise ValueError(f"input log URL {url!r}: {expected}, without query parameters")
        return cls(path, retention_s=retention_s, busy_timeout_s=busy_timeout_s)

    # -- InputLog ------------------------------------------------------------------

    def prepare(self, columns: StoreColumns) -> None:
        """Record the model's feature layout; a changed layout becomes a new version."""
        names = columns.numeric + columns.categorical
        if len(set(names)) != len(names):
            raise ValueError(f"model {columns.model!r}: a feature name is repeated in {names}")
        with self._transaction() as connection:
            layouts = load_layouts(connection, columns.model)
            if layouts and layouts[-1].matches(columns):
                layout = layouts[-1]
            else:
                version = layouts[-1].version + 1 if layouts else 1
                layout = insert_layout(connection, columns, version, time.time())
            self._layouts[columns.model] = layout

    def write(self, records: Sequence[LogRecord]) -> None:
        """One transaction. A record stored twice is one row (the last content wins),
        keeping a label that came first; ground truth waiting for it is joined in."""
        if not records:
            return
        with self._transaction() as connection:
            pending = _take_pending_labels(connection, [record.id for record in records])
            connection.executemany(UPSERT, record_rows(records, self._layouts, pending))
            if self._retention_s is not None and time.monotonic() >= self._next_purge:
                _purge(connection, time.time() - self._retention_s)
                self._next_purge = time.monotonic() + PURGE_INTERVAL_S

    def add_ground_truth(self, labels: Sequence[GroundTruth]) -> None:
        """Set the label of each record that exists; keep the others pending."""
        for truth in labels:
            if isinstance(truth.label, float) and not math.isfinite(truth.label):
                raise ValueError(f"ground truth for {truth.id!r}: expected a finite label")
        if not labels:
            return
        with self._transaction() as connection:
            ids = json.dumps([truth.id for truth in labels])
            existing = {
                row[0]
                for row in connection.execute(
                    "SELECT id FROM records WHERE id IN (SELECT value FROM json_each(?))", (ids,)
                )
            }
            connection.executemany(
                "UPDATE records SET label = ?, label_ts = ? WHERE id = ?",
                [(t.label, t.timestamp, t.id) for t in labels if t.id in existing],
            )
            connection.executemany(
                _UPSERT_PENDING,
                [(t.id, t.label, t.timestamp) for t in labels if t.id not in existing],
            )

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> SqliteLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- retention and reads -------------------------------------------------------

    def purge(self, older_than_ts: float) -> int:
        """Delete records (and pending labels) older than the time; returns records deleted."""
        with self._transaction() as connection:
            return _purge(connection, older_than_ts)

    def read_window(
        self,
        model: str,
        start_ts: float,
        end_ts: float,
        *,
        max_rows: int | None = None,
        newest_first: bool = False,
        role: str | None = None,
        candidate: str | None = None,
    ) -> Window:
        """The model's rows with start_ts <= ts < end_ts (see `read.read_window`); without
        a role or candidate, every row but the shadows'."""
        with self._transaction("DEFERRED") as connection:  # layouts and rows: one snapshot
            return read_window(
                connection,
                model,
                start_ts,
                end_ts,
                max_rows=max_rows,
                newest_first=newest_first,
                role=role,
                candidate=candidate,
            )

    def document(self, record_id: str) -> dict[str, Any] | None:
        """One stored record as `LogRecord.to_document()` spells it, its label (which
        may have come later) included; None if there is no such record."""
        with self._transaction("DEFERRED") as connection:
            row = connection.execute(
                "SELECT document, label FROM records WHERE id = ?", (record_id,)
            ).fetchone()
        if row is None:
            return None
        document: dict[str, Any] = json.loads(row[0])
        if row[1] is not None:
            document["label"] = row[1]
        return document

    def last_rows(
        self, model: str, n: int, *, role: str | None = None, candidate: str | None = None
    ) -> Window:
        """The model's newest n rows, newest first: a count-based window."""
        return self.read_window(
            model,
            -math.inf,
            math.inf,
            max_rows=n,
            newest_first=True,
            role=role,
            candidate=candidate,
        )

    def count_window(
        self,
        model: str,
        start_ts: float,
        end_ts: float,
        *,
        role: str | None = None,
        candidate: str | None = None,
    ) -> int:
        with self._transaction("DEFERRED") as connection:
            return count_window(connection, model, start_ts, end_ts, role=role, candidate=candidate)

    def models(self) -> list[str]:
        """Models that have records, in name order."""
        with self._transaction("DEFERRED") as connection:
            return list_models(connection)

    # -- internals -----------------------------------------------------------------

    def _set_up(self) -> None:
        connection = self._connection
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":  # e.g. a file system without shared memory
            raise ValueError(f"{self.path}: SQLite refused WAL mode (journal mode {mode!r})")
        connection.execute("PRAGMA synchronous = NORMAL")
        if connection.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION:
            return  # set up already: opening takes no write lock, even while one is held
        with self._transaction() as connection:
            found = connection.execute("PRAGMA user_version").fetchone()[0]
            if found not in (0, FORMAT_VERSION, *MIGRATIONS):
                raise ValueError(
                    f"{self.path}: input log format {found}, expected {FORMAT_VERSION}"
                )
            while found in MIGRATIONS:
                for statement in MIGRATIONS[found]:
                    connection.execute(statement)
                found += 1
            for statement in SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {FORMAT_VERSION}")

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock, unavailable_on_transient(self.path):
            connection = self._connection
            connection.execute(f"BEGIN {mode}")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # SQLite rolls some errors back by itself
                    connection.execute("ROLLBACK")
                raise


def _take_pending_labels(
    connection: sqlite3.Connection, ids: list[str]
) -> dict[str, tuple[LabelValue, float]]:
    """Labels (and when they arrived) that came before these records; removed, as they go
    into the records."""
    found: dict[str, tuple[LabelValue, float]] = {
        row_id: (label, ts)
        for row_id, label, ts in connection.execute(
            "SELECT id, label, ts FROM pending_labels WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
    }
    if found:
        connection.executemany("DELETE FROM pending_labels WHERE id = ?", [(i,) for i in found])
    return found


def _purge(connection: sqlite3.Connection, older_than_ts: float) -> int:
    # Per model, so that each delete is a range of the (model, ts) index, not a scan.
    deleted = 0
    for model in list_models(connection):
        cursor = connection.execute(
            "DELETE FROM records WHERE model = ? AND ts < ?", (model, older_than_ts)
        )
        deleted += cursor.rowcount
    connection.execute("DELETE FROM pending_labels WHERE ts < ?", (older_than_ts,))
    return deleted
