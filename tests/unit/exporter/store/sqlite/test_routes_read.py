"""Window reads by route: the shadows' rows left out by default, a role or candidate
selected on request; an input log of the previous format migrated when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.records import LogRecord, StoreColumns
from exporter.store.sqlite.format import FORMAT_VERSION
from exporter.store.sqlite.log import SqliteLog

T0 = 1_700_000_000.0
COLUMNS = StoreColumns("m", numeric=("age",), categorical=())


def record(number: int, role: str = "primary", candidate: str = "") -> LogRecord:
    suffix = f":shadow:{candidate}" if role == "shadow" else ""
    return LogRecord(
        id=f"req-{number}:0{suffix}",
        timestamp=T0 + number,
        request_id=f"req-{number}",
        row=0,
        model="m",
        model_version="v1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"age": float(number)},
        role=role,
        candidate=candidate,
    )


@pytest.fixture
def log(tmp_path: Path) -> SqliteLog:
    opened = SqliteLog(tmp_path / "log.db")
    opened.prepare(COLUMNS)
    opened.write(
        [record(i) for i in range(10)]
        + [record(i, "shadow", "m2") for i in range(10)]
        + [record(i, "shadow", "m3") for i in range(4)]
        + [record(10 + i, "canary", "c1") for i in range(3)]
    )
    return opened


def ages(log: SqliteLog, role: str | None = None, candidate: str | None = None) -> list[float]:
    window = log.read_window("m", T0, T0 + 100, role=role, candidate=candidate)
    return [float(x) for x in window.numeric[:, 0]]


def test_a_window_leaves_the_shadows_out_by_default(log: SqliteLog) -> None:
    assert ages(log) == [float(i) for i in range(13)]  # primary then canary, no shadow
    assert log.count_window("m", T0, T0 + 100) == 13
    assert log.last_rows("m", 5).count == 5


def test_a_role_and_a_candidate_select_exactly_their_rows(log: SqliteLog) -> None:
    assert ages(log, role="shadow", candidate="m2") == [float(i) for i in range(10)]
    assert ages(log, role="shadow") == sorted([*map(float, range(10)), 0.0, 1.0, 2.0, 3.0])
    assert ages(log, role="canary") == [10.0, 11.0, 12.0]
    assert ages(log, role="primary") == [float(i) for i in range(10)]
    assert log.count_window("m", T0, T0 + 100, role="shadow", candidate="m3") == 4
    assert log.last_rows("m", 2, role="shadow", candidate="m2").count == 2
    assert log.read_window("m", T0, T0 + 100, role="shadow", candidate="nobody").count == 0


def test_a_shadow_record_never_replaces_the_primary_one(log: SqliteLog) -> None:
    primary = log.document("req-3:0")
    shadow = log.document("req-3:0:shadow:m2")
    assert primary is not None and shadow is not None
    assert (primary["role"], primary["candidate"]) == ("primary", "")
    assert (shadow["role"], shadow["candidate"]) == ("shadow", "m2")
    assert primary["request_id"] == shadow["request_id"] == "req-3"


def test_an_unknown_role_is_refused(log: SqliteLog) -> None:
    with pytest.raises(ValueError, match="role: expected one of primary, shadow"):
        log.count_window("m", T0, T0 + 100, role="shadows")


def test_a_log_of_the_previous_format_is_migrated_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    # The format-1 tables, as the previous release created them, with one record.
    connection = sqlite3.connect(db)
    connection.executescript(
        """
        CREATE TABLE layouts (model TEXT NOT NULL, version INTEGER NOT NULL,
            numeric TEXT NOT NULL, categorical TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (model, version)) WITHOUT ROWID;
        CREATE TABLE records (id TEXT PRIMARY KEY, model TEXT NOT NULL,
            model_version TEXT NOT NULL, ts REAL NOT NULL, status INTEGER NOT NULL,
            prediction_value REAL, prediction_label TEXT, prediction_score REAL, label,
            issues TEXT, layout INTEGER, vector BLOB NOT NULL, categorical TEXT,
            document TEXT NOT NULL);
        CREATE INDEX records_window
            ON records (model, ts, layout, vector, categorical, prediction_label, label);
        CREATE TABLE pending_labels (id TEXT PRIMARY KEY, label NOT NULL, ts REAL NOT NULL);
        CREATE INDEX pending_labels_ts ON pending_labels (ts);
        PRAGMA user_version = 1;
        """
    )
    vector = b"\x00" * 24
    connection.execute(
        "INSERT INTO records (id, model, model_version, ts, status, vector, document) "
        "VALUES ('old:0', 'm', '1', ?, 200, ?, '{}')",
        (T0, vector),
    )
    connection.commit()
    connection.close()

    with SqliteLog(db) as log:
        assert log.count_window("m", T0 - 1, T0 + 100) == 1  # an old record is a primary's
        log.prepare(COLUMNS)
        log.write([record(5, "shadow", "m2"), record(6)])
        assert log.count_window("m", T0 - 1, T0 + 100) == 2
        assert log.count_window("m", T0 - 1, T0 + 100, role="shadow") == 1
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT layout, vector FROM records "
                "WHERE model = 'm' AND ts >= 0 AND role != 'shadow'"
            )
        )
    finally:
        connection.close()
    assert "COVERING INDEX records_window" in plan  # no table lookup for the route
