"""Window reads in chunks: rows sharing a timestamp across a chunk's end, the aggregated
read of the usual chunk and the row-by-row read of the others give the same window."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from exporter.records import GroundTruth, LogRecord, PredictionValue
from exporter.store.sqlite import read as sqlite_read
from exporter.store.sqlite.log import SqliteLog
from exporter.store.sqlite.read import Window, read_window
from tests.unit.exporter.store.sqlite.test_log import COLUMNS, T0, record

# Timestamps of 40 rows: runs of one, three and twelve rows sharing one.
TIMESTAMPS = [T0 + t for t in [0, 1, 1, 1, 2, *[3] * 12, 4, 5, 5, 5, *range(6, 25)]]


def tied_records() -> list[LogRecord]:
    return [
        record(i, {"age": float(i), "income": i / 10, "country": f"c{i % 3}"}, ts=ts)
        for i, ts in enumerate(TIMESTAMPS)
    ]


def read_all(db: Path, **options: object) -> Window:
    with sqlite3.connect(db) as connection:
        connection.execute("BEGIN")
        return read_window(connection, "m", -math.inf, math.inf, **options)  # type: ignore[arg-type]


def rows_of(window: Window) -> list[tuple[float, float, str | None]]:
    ages = window.numeric[:, window.numeric_names.index("age")].tolist()
    return list(zip(window.timestamps.tolist(), ages, window.categorical["country"], strict=True))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    with SqliteLog(path) as log:
        log.prepare(COLUMNS)
        log.write(tied_records())
    return path


@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 5])
def test_rows_sharing_a_timestamp_are_read_once_whatever_the_chunk(
    db: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = read_all(db)
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    chunked = read_all(db)
    assert chunked.count == whole.count == len(TIMESTAMPS)
    assert rows_of(chunked) == rows_of(whole)
    assert sorted(a for _, a, _ in rows_of(chunked)) == [float(i) for i in range(40)]
    np.testing.assert_array_equal(chunked.numeric, whole.numeric)
    np.testing.assert_array_equal(chunked.timestamps, TIMESTAMPS)
    assert chunked.label_ts is None and whole.label_ts is None  # no label: no array


@pytest.mark.parametrize("chunk_rows", [4, 65_536])
def test_a_label_after_rows_without_one_reads_its_arrival_alone(
    db: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunks before the labelled row's are read as aggregates, which carry no
    arrival times: those rows read as NaN."""
    with SqliteLog(db) as log:
        log.add_ground_truth([GroundTruth("req-39:0", "late", T0 + 500)])
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    window = read_all(db)
    assert window.label == [None] * 39 + ["late"]
    assert window.label_ts is not None
    np.testing.assert_array_equal(window.label_ts, [np.nan] * 39 + [T0 + 500])


@pytest.mark.parametrize("chunk_rows", [1, 3, 65_536])
@pytest.mark.parametrize("max_rows", [1, 5, 8, 20, 21, 100])
def test_the_newest_rows_are_counted_exactly_across_ties(
    db: Path, chunk_rows: int, max_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    window = read_all(db, max_rows=max_rows, newest_first=True)
    newest = sorted(TIMESTAMPS, reverse=True)[:max_rows]
    np.testing.assert_array_equal(window.timestamps, newest)
    assert len({age for _, age, _ in rows_of(window)}) == window.count  # no row twice


@pytest.mark.parametrize("chunk_rows", [2, 65_536])
def test_chunks_that_are_not_the_usual_one_read_the_same_rows(
    tmp_path: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels, predicted classes holding the separator or missing on some rows, and
    probabilities take the row-by-row read for their chunk only."""
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    predicted = ["yes", "a\x1fb", None, "no", "yes", "no", "yes", "no"]
    records = [
        record(
            i,
            prediction=PredictionValue(
                float(i), label, 0.5, probabilities={"yes": 0.25} if i == 6 else None
            ),
        )
        for i, label in enumerate(predicted)
    ]
    with SqliteLog(tmp_path / "log.db") as log:
        log.prepare(COLUMNS)
        log.write(records)
        log.add_ground_truth([GroundTruth("req-4:0", 1, T0 + 100)])
    window = read_all(tmp_path / "log.db", probabilities=True)
    assert window.prediction_label == predicted
    assert window.label == [None, None, None, None, 1, None, None, None]
    np.testing.assert_array_equal(window.prediction_value, np.arange(8.0))
    assert window.probability_texts == [None] * 6 + ['{"yes":0.25}', None]
    assert window.label_ts is not None
    np.testing.assert_array_equal(window.label_ts, [np.nan] * 4 + [T0 + 100] + [np.nan] * 3)
    assert window.categorical == {"country": ["fr"] * 8}


def test_the_usual_window_is_read_as_aggregates_not_row_by_row(db: Path) -> None:
    """What makes a 1,000,000-row window fast: SQLite hands each chunk over as a few
    values, not as a tuple per row."""
    statements: list[str] = []
    with sqlite3.connect(db) as connection:
        connection.set_trace_callback(statements.append)
        window = read_window(connection, "m", -math.inf, math.inf)
    assert window.count == len(TIMESTAMPS)
    reads = [s for s in statements if "FROM records" in s]
    assert reads and all("group_concat(vector" in s for s in reads)


def test_an_empty_window(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        window = read_window(connection, "m", T0 + 1000, T0 + 2000)
    assert window.count == 0
    assert window.numeric.shape == (0, 2)
    assert window.categorical == {"country": []}
