"""Whole logged rows streamed from a real SQLite input log for `export` (`sqlite.rows`):
every column as written, ties in insertion order across batch boundaries, rows of older
layouts, of no layout and of a migrated file alike."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from exporter.records import FeatureValue, GroundTruth, LogRecord, PredictionValue, StoreColumns
from exporter.store.base import StoreUnavailable
from exporter.store.sqlite import rows as sqlite_rows
from exporter.store.sqlite.format import FORMAT_VERSION
from exporter.store.sqlite.log import SqliteLog

T0 = 1_700_000_000.0
COLUMNS = StoreColumns("m", numeric=("age", "income"), categorical=("country",))


def record(
    request_id: str,
    row: int = 0,
    features: dict[str, FeatureValue] | None = None,
    *,
    ts: float = T0,
    version: str = "1",
    role: str = "primary",
    candidate: str = "",
    value: float | None = None,
) -> LogRecord:
    suffix = f":shadow:{candidate}" if role == "shadow" else ""
    return LogRecord(
        id=f"{request_id}:{row}{suffix}",
        timestamp=ts,
        request_id=request_id,
        row=row,
        model="m",
        model_version=version,
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"age": 1.0, "income": 2.0, "country": "fr"} if features is None else features,
        prediction=PredictionValue(value=value, label="yes", score=0.5),
        role=role,
        candidate=candidate,
    )


def read_rows(db: Path, batch_rows: int, **window: Any) -> list[dict[str, Any]]:
    """Every row `iter_rows` gives in batches of about `batch_rows`, one dict each."""
    connection = sqlite_rows.open_read_only(f"sqlite:///{db}")
    try:
        start, end = window.get("start", -math.inf), window.get("end", math.inf)
        found: list[dict[str, Any]] = []
        more = window.get("more", {})
        for batch in sqlite_rows.iter_rows(
            connection, "m", start, end, batch_rows=batch_rows, **more
        ):
            assert len(batch) > 0
            columns = {
                "ts": batch.timestamp.tolist(),
                "request_id": pa.array(batch.request_id, pa.string()).to_pylist(),
                "row": pa.array(batch.row, pa.int64()).to_pylist(),
                "model_version": pa.array(batch.model_version, pa.string()).to_pylist(),
                "protocol": pa.array(batch.protocol, pa.string()).to_pylist(),
                "role": pa.array(batch.role, pa.string()).to_pylist(),
                "candidate": pa.array(batch.candidate, pa.string()).to_pylist(),
                "label": list(batch.label),
                **{name: values.tolist() for name, values in batch.numeric.items()},
                **{
                    name: pa.array(values, pa.string()).to_pylist()
                    for name, values in batch.categorical.items()
                },
            }
            found += [
                dict(zip(columns, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
        return found
    finally:
        connection.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 65_536])
def test_rows_of_one_timestamp_come_in_insertion_order_across_batches(
    db: Path, batch_rows: int
) -> None:
    # One request of 7 rows at one timestamp, their vectors in falling order: the covering
    # index keeps ties in vector order, the reverse of the rows'.
    written = [record("batch", i, {"age": 10.0 - i}, value=10.0 - i) for i in range(7)]
    written += [record("after", 0, ts=T0 + 1), record("before", 0, ts=T0 - 1)]
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write(written)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        in_index = [
            row_id
            for (row_id,) in connection.execute(
                "SELECT id FROM records INDEXED BY records_window WHERE model = 'm' ORDER BY ts"
            )
        ]
    assert in_index[1:8] != [f"batch:{i}" for i in range(7)]  # the order to mend
    rows = read_rows(db, batch_rows)
    assert [(r["request_id"], r["row"]) for r in rows] == [
        ("before", 0),
        *[("batch", i) for i in range(7)],
        ("after", 0),
    ]
    assert [r["age"] for r in rows[1:8]] == [10.0 - i for i in range(7)]


def test_every_column_as_written_whatever_the_layout(db: Path) -> None:
    with SqliteLog(db) as log:
        # Before the model had a layout: features only in the document.
        log.write([record("doc", 0, {"age": 3.0, "country": "de", "extra": "x"}, ts=T0)])
        log.prepare(COLUMNS)
        log.write([record("a:b", 3, {"age": None, "income": 4.0, "country": None}, ts=T0 + 1)])
        log.prepare(StoreColumns("m", numeric=("tenure", "age"), categorical=("country", "os")))
        log.write(
            [
                record(
                    "new",
                    0,
                    {"tenure": 5.0, "age": 6.0, "country": "us", "os": "ios"},
                    ts=T0 + 2,
                    version="2",
                    role="canary",
                    candidate="c1",
                ),
                record("new", 0, ts=T0 + 2, role="shadow", candidate="m2"),
                record(
                    "last",
                    1,
                    {"tenure": 7.0, "age": 8.0, "country": "fr", "os": None},
                    ts=T0 + 3,
                    version="3",
                ),
            ]
        )
        log.add_ground_truth([GroundTruth("a:b:3", "yes", T0 + 9)])
    expected = [
        ("doc", 0, "1", "primary", "", None, math.nan, 3.0, "de", None),
        ("a:b", 3, "1", "primary", "", "yes", math.nan, math.nan, None, None),
        ("new", 0, "2", "canary", "c1", None, 5.0, 6.0, "us", "ios"),
        ("last", 1, "3", "primary", "", None, 7.0, 8.0, "fr", None),
    ]
    for batch_rows in (1, 65_536):  # one layout per batch, and all of them in one
        rows = read_rows(db, batch_rows)
        assert [r["ts"] for r in rows] == [T0, T0 + 1, T0 + 2, T0 + 3]
        assert {r["protocol"] for r in rows} == {"v2"}
        found = [
            (r["request_id"], r["row"], r["model_version"], r["role"], r["candidate"],
             r["label"], r["tenure"], r["age"], r["country"], r["os"])
            for r in rows
        ]  # fmt: skip
        assert repr(found) == repr(expected)  # NaN where not logged


@pytest.mark.parametrize("batch_rows", [1, 2, 65_536])
def test_labels_come_back_as_stored_whatever_arrived_first(db: Path, batch_rows: int) -> None:
    """The columnar reader types a column from its first rows: labels not yet arrived there
    must not make a later text or real label fail, nor turn an integer into a float."""
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write([record(f"r{i}", ts=T0 + i) for i in range(5)])
        log.add_ground_truth(
            [
                GroundTruth("r1:0", 1, T0 + 9),
                GroundTruth("r2:0", 0.5, T0 + 9),
                GroundTruth("r3:0", "yes", T0 + 9),
                GroundTruth("r4:0", 2, T0 + 9),
            ]
        )
    labels = [r["label"] for r in read_rows(db, batch_rows)]
    assert repr(labels) == repr([None, 1, 0.5, "yes", 2])


def test_the_newest_rows_and_what_counting_them_says(db: Path) -> None:
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write([record(f"r{i}", 0, ts=T0 + i // 2) for i in range(10)])  # pairs of ties
        log.add_ground_truth([GroundTruth("r9:0", 1, T0 + 9), GroundTruth("r1:0", "no", T0)])
    connection = sqlite_rows.open_read_only(f"sqlite:///{db}")
    try:
        after = sqlite_rows.newest_start(connection, "m", 3, math.inf)
        counted = sqlite_rows.window_count(connection, "m", -math.inf, math.inf, after=after)
        everything = sqlite_rows.window_count(connection, "m", -math.inf, math.inf)
        empty = sqlite_rows.window_count(connection, "m", T0 + 100, math.inf)
    finally:
        connection.close()
    assert (counted.rows, counted.label_kind) == (3, "number")
    assert (everything.rows, everything.label_kind) == (10, "text")
    assert (empty.rows, empty.label_kind) == (0, None)
    rows = read_rows(db, 2, more={"after": after})
    assert [r["request_id"] for r in rows] == ["r7", "r8", "r9"]
    assert rows[-1]["label"] == 1


def test_a_migrated_file_exports_its_old_rows(db: Path) -> None:
    # A format-2 file, as the previous release created it, with one record of a layout.
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write([record("old", 2, {"age": 9.0, "income": 1.0, "country": "de"})])
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.executescript(
            """
            DROP INDEX records_window;
            ALTER TABLE records DROP COLUMN protocol;
            ALTER TABLE records DROP COLUMN probabilities;
            ALTER TABLE records DROP COLUMN label_ts;
            CREATE INDEX records_window ON records (model, ts, role, candidate, layout,
                vector, categorical, prediction_label, label);
            PRAGMA user_version = 2;
            """
        )
    with SqliteLog(db) as log:  # migrates it
        log.prepare(COLUMNS)
        log.write([record("new", 0, ts=T0 + 1)])
    rows = read_rows(db, 65_536)
    assert [(r["request_id"], r["row"], r["protocol"], r["age"], r["country"]) for r in rows] == [
        ("old", 2, "v2", 9.0, "de"),
        ("new", 0, "v2", 1.0, "fr"),
    ]


def test_a_file_it_cannot_read_says_why(tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as connection:
        connection.execute("PRAGMA user_version = 1")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreUnavailable, match=f"format 1, expected {FORMAT_VERSION}"):
        sqlite_rows.open_read_only(f"sqlite:///{older}")
    with pytest.raises(StoreUnavailable, match=r"junk\.db: .*not a database"):
        sqlite_rows.open_read_only(f"sqlite:///{junk}")
