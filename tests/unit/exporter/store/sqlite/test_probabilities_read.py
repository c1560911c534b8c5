"""Per-class probabilities and label arrival times in the SQLite input log (issue 15):
written with the record, read back by window reads from the covering index, and kept
when a file of the previous format is migrated."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from exporter.records import GroundTruth, LabelValue, LogRecord, PredictionValue, StoreColumns
from exporter.store.sqlite.format import FORMAT_VERSION
from exporter.store.sqlite.log import SqliteLog
from exporter.store.sqlite.read import decode_probabilities, read_window

T0 = 1_700_000_000.0
COLUMNS = StoreColumns("iris", numeric=("x",), categorical=())


def record(
    number: int,
    probabilities: dict[str, float] | None = None,
    label: LabelValue | None = None,
) -> LogRecord:
    return LogRecord(
        id=f"req-{number}:0",
        timestamp=T0 + number,
        request_id=f"req-{number}",
        row=0,
        model="iris",
        model_version="1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"x": float(number)},
        prediction=PredictionValue(label="a", score=0.5, probabilities=probabilities),
        label=label,
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteLog]:
    with SqliteLog(tmp_path / "log.db") as opened:
        opened.prepare(COLUMNS)
        yield opened


def test_probabilities_come_back_one_column_per_class(log: SqliteLog) -> None:
    log.write(
        [
            record(0, {"a": 0.7, "b": 0.2, "c": 0.1}),
            record(1),  # a row without: NaN in every column
            record(2, {"a": 0.1, "c": 0.9}),  # a class not given: NaN there
        ]
    )
    with sqlite3.connect(log.path) as connection:
        read = read_window(connection, "iris", T0, T0 + 100, probabilities=True)
        skipped = read_window(connection, "iris", T0, T0 + 100)
    columns = decode_probabilities(read.probability_texts)
    assert sorted(columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(columns["a"], [0.7, np.nan, 0.1])
    np.testing.assert_array_equal(columns["b"], [0.2, np.nan, np.nan])
    np.testing.assert_array_equal(columns["c"], [0.1, np.nan, 0.9])
    # Only the rows wanted are decoded (an estimate's sample).
    assert decode_probabilities(read.probability_texts[2:]) == {
        "a": pytest.approx([0.1]),
        "c": pytest.approx([0.9]),
    }
    assert skipped.probability_texts == []  # not asked for (a regression's read)


def test_a_window_without_probabilities_has_no_columns(log: SqliteLog) -> None:
    log.write([record(0), record(1)])
    with sqlite3.connect(log.path) as connection:
        read = read_window(connection, "iris", T0, T0 + 100, probabilities=True)
    assert read.probability_texts == [] and read.count == 2


def test_label_arrival_times_are_kept_whichever_comes_first(log: SqliteLog) -> None:
    # A label for req-1 that arrives before its record, 3 s before the record's time.
    log.add_ground_truth([GroundTruth("req-1:0", "b", T0 - 2)])
    log.write([record(0), record(1), record(2, label="a"), record(3)])
    log.add_ground_truth([GroundTruth("req-0:0", "c", T0 + 30)])
    with sqlite3.connect(log.path) as connection:
        read = read_window(connection, "iris", T0, T0 + 100)
    assert read.label == ["c", "b", "a", None]
    assert read.label_ts is not None
    # A label in the record itself arrived with it.
    np.testing.assert_array_equal(read.label_ts, [T0 + 30, T0 - 2, T0 + 2, np.nan])


def test_a_format_2_log_is_migrated_and_reads_stay_covering(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
    # Back to format 2, as the previous release left it: no new columns, the old index.
    connection = sqlite3.connect(db)
    connection.executescript(
        """
        DROP INDEX records_window;
        ALTER TABLE records DROP COLUMN protocol;
        ALTER TABLE records DROP COLUMN probabilities;
        ALTER TABLE records DROP COLUMN label_ts;
        CREATE INDEX records_window ON records (model, ts, role, candidate, layout, vector,
            categorical, prediction_label, label);
        PRAGMA user_version = 2;
        """
    )
    connection.execute(
        "INSERT INTO records (id, model, model_version, ts, status, label, layout, vector, "
        "document) VALUES ('old:0', 'iris', '1', ?, 200, 'a', NULL, ?, "
        '\'{"protocol": "v1"}\')',
        (T0, b"\x00" * 24),
    )
    connection.commit()
    connection.close()

    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write([record(5, {"a": 0.4, "b": 0.6})])
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
        assert connection.execute("SELECT protocol FROM records ORDER BY ts").fetchall() == [
            ("v1",),
            ("v2",),
        ]
        read = read_window(connection, "iris", T0 - 1, T0 + 100, probabilities=True)
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT layout, vector, categorical, prediction_label, "
                "label, label_ts, probabilities FROM records WHERE model = 'iris' AND ts >= 0"
            )
        )
    finally:
        connection.close()
    assert "COVERING INDEX records_window" in plan  # the new columns are in the index
    assert read.label == ["a", None]
    assert read.label_ts is not None and math.isnan(read.label_ts[0])  # unknown: migrated
    np.testing.assert_array_equal(decode_probabilities(read.probability_texts)["b"], [np.nan, 0.6])
