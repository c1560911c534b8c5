from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.records import (
    FeatureValue,
    GroundTruth,
    LabelValue,
    LogRecord,
    PredictionValue,
    StoreColumns,
)
from exporter.store.base import StoreUnavailable
from exporter.store.sqlite import read as sqlite_read
from exporter.store.sqlite.log import SqliteLog

T0 = 1_700_000_000.0
COLUMNS = StoreColumns("m", numeric=("age", "income"), categorical=("country",))


def record(
    number: int,
    features: dict[str, FeatureValue] | None = None,
    *,
    model: str = "m",
    ts: float | None = None,
    label: LabelValue | None = None,
    prediction: PredictionValue | None = None,
) -> LogRecord:
    return LogRecord(
        id=f"req-{number}:0",
        timestamp=T0 + number if ts is None else ts,
        request_id=f"req-{number}",
        row=0,
        model=model,
        model_version="v1",
        protocol="v1",
        status=200,
        latency_ms=2.5,
        features={"age": float(number), "income": 0.1, "country": "fr"}
        if features is None
        else features,
        prediction=prediction,
        label=label,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def log(db: Path) -> Iterator[SqliteLog]:
    with SqliteLog(db) as opened:
        opened.prepare(COLUMNS)
        yield opened


def stored(db: Path, query: str) -> list[Any]:
    """What an operator sees with sqlite3."""
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchall()


def test_a_window_reads_back_what_was_written(log: SqliteLog) -> None:
    log.write(
        [
            record(0, {"age": 1 / 3, "income": None, "country": "fr"},
                   prediction=PredictionValue(value=0.25, label="yes", score=0.9)),
            record(1, {"age": -2.5e30, "income": 7.0, "country": None}),
            record(2, {"age": 3.0, "country": ""}),  # income absent: missing
        ]
    )  # fmt: skip
    window = log.read_window("m", T0, T0 + 3)
    assert window.count == 3
    assert window.numeric_names == ("age", "income")
    assert window.numeric.dtype == np.float32
    expected = np.array([[1 / 3, np.nan], [-2.5e30, 7.0], [3.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(window.numeric, expected)  # NaN == NaN here
    assert window.categorical_names == ("country",)
    assert window.categorical == {"country": ["fr", None, ""]}
    np.testing.assert_array_equal(window.prediction_value, [0.25, np.nan, np.nan])
    np.testing.assert_array_equal(window.prediction_score, [0.9, np.nan, np.nan])
    assert window.prediction_label == ["yes", None, None]
    assert window.label == [None, None, None]
    np.testing.assert_array_equal(window.timestamps, [T0, T0 + 1, T0 + 2])


def test_windows_are_half_open_and_can_be_capped_from_either_end(log: SqliteLog) -> None:
    log.write([record(i) for i in range(10)] + [record(100, model="other")])
    assert log.count_window("m", T0 + 2, T0 + 5) == 3
    assert log.read_window("m", T0 + 2, T0 + 5).numeric[:, 0].tolist() == [2, 3, 4]
    assert log.read_window("m", T0, T0 + 10, max_rows=2).numeric[:, 0].tolist() == [0, 1]
    newest = log.read_window("m", T0, T0 + 10, max_rows=2, newest_first=True)
    assert newest.numeric[:, 0].tolist() == [9, 8]
    assert log.last_rows("m", 3).numeric[:, 0].tolist() == [9, 8, 7]
    assert log.models() == ["m", "other"]
    empty = log.read_window("m", T0 + 50, T0 + 60)
    assert empty.count == 0
    assert empty.numeric.shape == (0, 2)
    assert empty.categorical == {"country": []}


def test_the_stored_row_carries_the_document_and_queryable_columns(
    log: SqliteLog, db: Path
) -> None:
    log.write([record(1, prediction=PredictionValue(value=1.0, label="yes", score=0.8))])
    [(model, ts, status, value, label, document)] = stored(
        db, "SELECT model, ts, status, prediction_value, prediction_label, document FROM records"
    )
    assert (model, ts, status, value, label) == ("m", T0 + 1, 200, 1.0, "yes")
    assert (
        json.loads(document) == record(1, prediction=PredictionValue(1.0, "yes", 0.8)).to_document()
    )


def test_writing_a_record_again_stores_it_once_with_the_new_content(
    log: SqliteLog, db: Path
) -> None:
    log.write([record(1), record(2)])
    log.write([record(1, {"age": 50.0, "income": 1.0, "country": "de"})])
    assert stored(db, "SELECT count(*) FROM records") == [(2,)]
    window = log.read_window("m", T0, T0 + 10)
    assert window.numeric[:, 0].tolist() == [50.0, 2.0]
    assert window.categorical["country"] == ["de", "fr"]


def test_ground_truth_after_the_record(log: SqliteLog) -> None:
    log.write([record(1), record(2)])
    log.add_ground_truth([GroundTruth("req-2:0", "fraud", T0 + 5)])
    assert log.read_window("m", T0, T0 + 10).label == [None, "fraud"]
    assert log.document("req-2:0") == record(2, label="fraud").to_document()
    assert log.document("req-1:0") == record(1).to_document()
    assert log.document("req-3:0") is None


def test_ground_truth_before_the_record_waits_for_it(log: SqliteLog, db: Path) -> None:
    log.add_ground_truth([GroundTruth("req-1:0", 1, T0), GroundTruth("req-9:0", 2.5, T0)])
    assert len(stored(db, "SELECT * FROM pending_labels")) == 2
    log.write([record(1)])
    assert log.read_window("m", T0, T0 + 10).label == [1]
    assert stored(db, "SELECT id FROM pending_labels") == [("req-9:0",)]


def test_a_retried_record_keeps_the_label_that_came_first(log: SqliteLog) -> None:
    log.write([record(1)])
    log.add_ground_truth([GroundTruth("req-1:0", True, T0)])
    log.write([record(1)])  # a spool replay, without the label
    assert log.read_window("m", T0, T0 + 10).label == [1]  # a bool comes back as 0 or 1
    log.add_ground_truth([GroundTruth("req-1:0", "corrected", T0)])
    assert log.read_window("m", T0, T0 + 10).label == ["corrected"]


def test_a_label_must_be_finite(log: SqliteLog) -> None:
    with pytest.raises(ValueError, match="req-1:0"):
        log.add_ground_truth([GroundTruth("req-1:0", math.nan, T0)])


def test_purge_deletes_old_records_and_old_pending_labels(log: SqliteLog, db: Path) -> None:
    log.write([record(i) for i in range(10)] + [record(20, model="other")])
    log.add_ground_truth([GroundTruth("late:0", "a", T0), GroundTruth("new:0", "b", T0 + 30)])
    assert log.purge(T0 + 4) == 4
    assert log.read_window("m", 0, math.inf).numeric[:, 0].tolist() == [4, 5, 6, 7, 8, 9]
    assert log.count_window("other", 0, math.inf) == 1
    assert stored(db, "SELECT id FROM pending_labels") == [("new:0",)]


def test_retention_purges_during_writes_at_most_once_a_minute(db: Path) -> None:
    now = time.time()
    with SqliteLog(db, retention_s=3600) as log:
        log.write([record(1, ts=now - 7200), record(2, ts=now)])
        assert log.count_window("m", 0, math.inf) == 1
        log.write([record(3, ts=now - 7200)])  # the next purge is a minute away
        assert log.count_window("m", 0, math.inf) == 2


@pytest.mark.parametrize("chunk_rows", [1, 65_536])
def test_a_new_layout_version_reads_old_rows_by_name(
    db: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    with SqliteLog(db) as log:
        log.prepare(COLUMNS)
        log.write([record(1, {"age": 1.0, "income": 10.0, "country": "fr"})])
        log.prepare(StoreColumns("m", numeric=("tenure", "age"), categorical=("country", "os")))
        new: dict[str, FeatureValue] = {"tenure": 5.0, "age": 2.0, "country": "de", "os": "ios"}
        log.write([record(2, new, prediction=PredictionValue(0.5, "no", 0.7))])
        log.add_ground_truth([GroundTruth("req-1:0", "yes", T0)])
        window = log.read_window("m", T0, T0 + 10)
    np.testing.assert_array_equal(window.timestamps, [T0 + 1, T0 + 2])
    np.testing.assert_array_equal(window.prediction_score, [np.nan, 0.7])
    assert (window.prediction_label, window.label) == ([None, "no"], ["yes", None])
    assert window.numeric_names == ("tenure", "age")
    np.testing.assert_array_equal(window.numeric, [[np.nan, 1.0], [5.0, 2.0]])
    assert window.categorical == {"country": ["fr", "de"], "os": [None, "ios"]}
    assert stored(db, "SELECT version FROM layouts ORDER BY version") == [(1,), (2,)]


def test_preparing_the_same_layout_again_adds_no_version(db: Path) -> None:
    for _ in range(2):  # a restart of the sidecar
        with SqliteLog(db) as log:
            log.prepare(COLUMNS)
    assert stored(db, "SELECT count(*) FROM layouts") == [(1,)]


def test_a_schemaless_model_stores_documents_only(log: SqliteLog, db: Path) -> None:
    log.write([record(1, {"free.text": "hello", "n": 3.0}, model="loose")])
    [(layout, vector, document)] = stored(
        db, "SELECT layout, vector, document FROM records WHERE model = 'loose'"
    )
    assert (layout, len(vector)) == (None, 24)  # timestamp, prediction value and score
    assert json.loads(document)["features"] == {"free.text": "hello", "n": 3.0}
    window = log.read_window("loose", T0, T0 + 10)
    assert window.count == 1
    assert window.numeric.shape == (1, 0)
    assert window.categorical == {}


@pytest.mark.parametrize("chunk_rows", [1, 65_536])
def test_rows_written_before_the_layout_are_read_from_their_documents(
    db: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_read, "CHUNK_ROWS", chunk_rows)
    with SqliteLog(db) as log:
        log.write([record(1, {"age": 1.0, "country": "fr", "extra": "x"})])
        log.prepare(COLUMNS)
        log.write([record(2)])
        window = log.read_window("m", T0, T0 + 10)
    expected = np.array([[1.0, np.nan], [2.0, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(window.numeric, expected)
    assert window.categorical == {"country": ["fr", "fr"]}
    np.testing.assert_array_equal(window.timestamps, [T0 + 1, T0 + 2])


def test_categories_keep_none_apart_from_text_and_lose_no_row(log: SqliteLog) -> None:
    odd = ["a\x1fb", "\x1e", "", "naïve"]
    log.write([record(i, {"country": text}) for i, text in enumerate(odd)])
    assert log.read_window("m", T0, T0 + 10).categorical["country"] == [
        "a\ufffdb",
        "\ufffd",
        "",
        "naïve",
    ]


def test_a_numeric_feature_that_is_no_number_is_missing(log: SqliteLog) -> None:
    log.write([record(1, {"age": "old", "income": "12.5"})])
    np.testing.assert_array_equal(log.read_window("m", T0, T0 + 10).numeric, [[np.nan, 12.5]])


def test_a_locked_database_is_unavailable_not_an_error(db: Path) -> None:
    with SqliteLog(db, busy_timeout_s=0.05) as log:
        log.prepare(COLUMNS)
        log.write([record(1)])
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                log.write([record(2)])
            with pytest.raises(StoreUnavailable):
                log.add_ground_truth([GroundTruth("req-1:0", "a", T0)])
            assert log.count_window("m", 0, math.inf) == 1  # WAL: reads go on
            with SqliteLog(db, busy_timeout_s=0.05) as reader:  # and so does opening
                assert reader.models() == ["m"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        log.write([record(2)])
        assert log.count_window("m", 0, math.inf) == 2


def test_a_full_disk_is_unavailable(log: SqliteLog) -> None:
    pages = log._connection.execute("PRAGMA page_count").fetchone()[0]
    log._connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreUnavailable, match="full"):
        log.write([record(i, {"age": float(i), "country": "x" * 500}) for i in range(200)])
    assert log.count_window("m", 0, math.inf) == 0  # all or nothing


def test_misuse_is_not_mistaken_for_unavailability(db: Path) -> None:
    log = SqliteLog(db)
    log.close()
    with pytest.raises(sqlite3.ProgrammingError):
        log.write([record(1)])


def test_a_file_of_another_format_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="format 99"):
        SqliteLog(db)


def test_one_object_may_be_shared_by_threads(log: SqliteLog) -> None:
    def work(offset: int) -> None:
        for i in range(20):
            log.write([record(offset + i)])
            log.add_ground_truth([GroundTruth(f"req-{offset + i}:0", "ok", T0)])

    threads = [threading.Thread(target=work, args=(1000 * k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.read_window("m", 0, math.inf).label == ["ok"] * 80


def write_records(path: str, count: int, start_at: float) -> None:
    with SqliteLog(path, busy_timeout_s=10) as log:
        log.prepare(COLUMNS)
        time.sleep(max(0.0, start_at - time.time()))
        for start in range(0, count, 5):
            log.write([record(i) for i in range(start, start + 5)])


def write_labels(path: str, count: int, start_at: float) -> None:
    with SqliteLog(path, busy_timeout_s=10) as log:
        time.sleep(max(0.0, start_at - time.time()))
        for i in reversed(range(count)):  # the first before their records, the last after
            log.add_ground_truth([GroundTruth(f"req-{i}:0", f"label-{i}", T0 + i)])


def read_windows(path: str, count: int, start_at: float) -> list[int]:
    with SqliteLog(path, busy_timeout_s=10) as log:
        time.sleep(max(0.0, start_at - time.time()))
        return [log.read_window("m", 0, math.inf).count for _ in range(count // 10)]


def test_processes_write_records_and_labels_and_read_at_once(db: Path) -> None:
    SqliteLog(db).close()  # created first, as the sidecar does
    count, start_at = 3000, time.time() + 2.0  # past the workers' start-up
    with ProcessPoolExecutor(3, mp_context=get_context("spawn")) as pool:
        records = pool.submit(write_records, str(db), count, start_at)
        labels = pool.submit(write_labels, str(db), count, start_at)
        reads = pool.submit(read_windows, str(db), count, start_at)
        records.result(timeout=120)
        labels.result(timeout=120)
        counts = reads.result(timeout=120)
    assert counts == sorted(counts)  # each read saw a consistent log, growing
    with SqliteLog(db) as log:
        window = log.read_window("m", 0, math.inf)
    assert window.label == [f"label-{i}" for i in range(count)]
    assert stored(db, "SELECT count(*) FROM pending_labels") == [(0,)]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost/mlmon",
        "sqlite:/mlmon.db",
        "sqlite://mlmon.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///mlmon.db?mode=ro",
    ],
)
def test_a_bad_url_says_what_was_expected(url: str) -> None:
    with pytest.raises(ValueError, match=r"expected \"sqlite:///relative/path\.db\""):
        SqliteLog.from_url(url)


def test_urls_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with SqliteLog.from_url("sqlite:///./relative.db") as log:
        assert log.path.resolve() == tmp_path / "relative.db"
    absolute = tmp_path / "absolute.db"
    with SqliteLog.from_url(f"sqlite:///{absolute}", retention_s=60) as log:  # 4 slashes
        assert log.path == absolute
    assert absolute.exists()
    assert (tmp_path / "relative.db").exists()


@pytest.mark.slow
def test_a_window_of_100_000_rows_by_20_features(db: Path) -> None:
    names = tuple(f"x{i}" for i in range(20))
    values = np.random.default_rng(3).normal(size=(100_000, 20))
    values[values > 2.5] = np.nan
    rows = [
        {name: None if math.isnan(v) else v for name, v in zip(names, row, strict=True)}
        for row in values.tolist()
    ]
    with SqliteLog(db) as log:
        log.prepare(StoreColumns("wide", numeric=names))
        for start in range(0, len(rows), 5000):
            log.write([record(i, rows[i], model="wide") for i in range(start, start + 5000)])
        window = log.read_window("wide", 0, math.inf)
    assert window.numeric.shape == (100_000, 20)
    np.testing.assert_array_equal(window.numeric, values.astype(np.float32))
    assert np.all(np.diff(window.timestamps) > 0)
