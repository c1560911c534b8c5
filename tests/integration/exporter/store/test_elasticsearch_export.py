"""`export` from an Elasticsearch-API store: the same records written to SQLite and to the
engine give the same file, row for row (timestamps to the millisecond the index keeps)."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet
import pytest
from elasticsearch import Elasticsearch

from exporter.records import GroundTruth, LogRecord, PredictionValue, StoreColumns
from exporter.store.elasticsearch.log import ElasticsearchLog
from exporter.store.sqlite.log import SqliteLog
from stats_service.cli import main
from stats_service.offline.export import write_export
from stats_service.offline.log_rows import LogRowsError, open_log_rows
from stats_service.offline.past_window import parse_past_window

START = float(int(time.time()) - 600)
WINDOW = "/".join(datetime.fromtimestamp(ts, UTC).isoformat() for ts in (START, START + 300))
COLUMNS = StoreColumns("credit", numeric=("income",), categorical=("region",))


def records() -> list[LogRecord]:
    written = []
    for i in range(12_000):  # more than one page of hits
        role, candidate, suffix = "primary", "", ""
        if i % 10 == 9:
            role, candidate, suffix = "shadow", "m2", ":shadow:m2"
        elif i % 10 == 8:
            role, candidate = "canary", "c1"
        written.append(
            LogRecord(
                id=f"r-{i // 10}-{i % 10}:0{suffix}",
                timestamp=START + i * 0.01,
                request_id=f"r-{i // 10}-{i % 10}",
                row=0,
                model="credit",
                model_version="2" if role == "canary" else "1",
                protocol="v2",
                status=200,
                latency_ms=1.0,
                features={"income": None if i % 7 == 0 else i * 1.5, "region": f"r{i % 3}"},
                prediction=PredictionValue(label="yes" if i % 2 else "no", score=0.5 + i % 5 / 10),
                role=role,
                candidate=candidate,
            )
        )
    return written


def export_rows(
    store: str, out: Path, model: str = "credit", **options: str
) -> list[dict[str, str]]:
    with open_log_rows(store, model, parse_past_window(WINDOW, time.time()), **options) as rows:
        write_export(rows, out)
    with out.open(newline="") as file:
        return list(csv.DictReader(file))


def moment(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_an_export_from_elasticsearch_equals_one_from_sqlite(
    log: ElasticsearchLog, client: Elasticsearch, es_url: str, prefix: str, tmp_path: Path
) -> None:
    written = records()
    labels = [GroundTruth(f"r-{i}-0:0", "yes", START + 200) for i in range(0, 1200, 3)]
    log.prepare(COLUMNS)
    log.write(written)
    log.add_ground_truth(labels)
    client.indices.refresh(index=log.index_for("credit"))
    with SqliteLog(tmp_path / "log.db") as sqlite_log:
        sqlite_log.prepare(COLUMNS)
        sqlite_log.write(written)
        sqlite_log.add_ground_truth(labels)

    from_sqlite = export_rows(f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "sqlite.csv")
    from_engine = export_rows(es_url, tmp_path / "engine.csv", index_prefix=prefix)

    assert len(from_sqlite) == 10_800  # the shadows' copies are left out
    assert {row["role"] for row in from_engine} == {"primary", "canary"}
    assert sum(row["label"] == "yes" for row in from_engine) == 400
    for mine, theirs in zip(from_sqlite, from_engine, strict=True):
        assert moment(mine.pop("timestamp")) == pytest.approx(
            moment(theirs.pop("timestamp")), abs=1e-3
        )
        assert mine == theirs


def test_an_unknown_model_is_said_before_any_file_is_written(
    es_url: str, prefix: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(LogRowsError, match="'nobody' has no records"):
        export_rows(es_url, out, "nobody", index_prefix=prefix)
    assert not out.exists()


def test_the_command_reads_the_sidecars_index_prefix(
    log: ElasticsearchLog, client: Elasticsearch, es_url: str, prefix: str, tmp_path: Path
) -> None:
    log.prepare(COLUMNS)
    log.write(records()[:50])
    client.indices.refresh(index=log.index_for("credit"))
    out = tmp_path / "rows.parquet"
    arguments = ["export", "--store", es_url, "--model", "credit", "--window", WINDOW]
    assert main([*arguments, "--out", str(out), "--index-prefix", prefix]) == 0
    assert pyarrow.parquet.read_table(out).num_rows == 45
