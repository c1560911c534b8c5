"""The input log end to end through a live sidecar, on the embedded SQLite store."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.store.sqlite.log import SqliteLog
from tests.support.processes import free_port, kill_tree, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import scrape, value, wait_for
from tests.support.stores import sqlite_locked

SCHEMA = """
model: credit
features:
  - {name: age, type: integer, range: [18, 100]}
  - {name: country, type: categorical, categories: [fr, de, us]}
  - {name: ssn, type: categorical, log: false}
"""


def predictions(req: RawRequest) -> bytes:
    rows = len(json.loads(req.body)["instances"])
    body = json.dumps({"predictions": [0.25] * rows}).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(predictions) as server:
        yield server


def predict(url: str, request_id: str, rows: int = 3) -> int:
    instances = [{"age": 20 + i, "country": "fr", "ssn": f"000-00-{i:04d}"} for i in range(rows)]
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request(
        "POST",
        "/v1/models/credit:predict",
        json.dumps({"instances": instances}),
        {"x-request-id": request_id, "authorization": "Bearer client-secret"},
    )
    response = connection.getresponse()
    response.read()
    return response.status


def post_feedback(url: str, body: object, token: str = "") -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    connection.request("POST", "/feedback", json.dumps(body), headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


Stored = dict[str, tuple[dict[str, object], object]]


def stored(db: Path) -> Stored:
    """id -> (record document, label), read back through the store's own API."""
    if not db.exists():
        return {}
    with SqliteLog(db) as log, sqlite3.connect(db, timeout=10) as connection:
        ids = [i for (i,) in connection.execute("SELECT id FROM records")]
        documents = {i: log.document(i) for i in ids}
    return {i: (d, d.get("label")) for i, d in documents.items() if d is not None}


def wait_stored(db: Path, count: int, timeout: float = 30) -> Stored:
    deadline = time.monotonic() + timeout
    records = stored(db)
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        records = stored(db)
    return records


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "credit.yaml"
    path.write_text(SCHEMA)
    return path


def test_each_row_is_logged_with_features_issues_and_prediction_and_no_secrets(
    upstream: RawUpstream, tmp_path: Path, schema_file: Path
) -> None:
    with sidecar(upstream.url, tmp_path, args=["--schema", str(schema_file)]) as running:
        for i in range(20):
            assert predict(running.url, f"req-{i}") == 200
        records = wait_stored(tmp_path / "mlmon.db", 60)
        log_text = running.output()
    assert len(records) == 60
    document, label = records["req-7:2"]
    assert label is None
    assert document["request_id"] == "req-7"
    assert document["row"] == 2
    assert document["model"] == "credit"
    assert document["status"] == 200
    assert document["features"] == {"age": 22.0, "country": "fr"}
    assert document["prediction"] == {"value": 0.25, "label": None, "score": None}
    everything = json.dumps([d for d, _ in records.values()]) + log_text
    assert "000-00-" not in everything  # the log: false feature
    assert "client-secret" not in everything  # the Authorization header


def test_ground_truth_joins_its_record_whether_it_comes_after_or_before(
    upstream: RawUpstream, tmp_path: Path, schema_file: Path
) -> None:
    db = tmp_path / "mlmon.db"
    with sidecar(upstream.url, tmp_path, args=["--schema", str(schema_file)]) as running:
        assert predict(running.url, "early-record") == 200
        wait_stored(db, 3)
        early = {"request_id": "early-record", "row": 1, "label": "yes"}
        assert post_feedback(running.url, early) == (200, {"accepted": 1})
        late = {"request_id": "late-record", "labels": ["no", 1, True]}
        assert post_feedback(running.url, late) == (200, {"accepted": 3})
        assert predict(running.url, "late-record") == 200
        records = wait_stored(db, 6)
        deadline = time.monotonic() + 10
        while records["early-record:1"][1] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            records = stored(db)
    assert records["early-record:1"][1] == "yes"
    assert records["early-record:0"][1] is None
    assert [records[f"late-record:{row}"][1] for row in range(3)] == ["no", 1, 1]


def test_feedback_errors_and_bearer_token(upstream: RawUpstream, tmp_path: Path) -> None:
    with sidecar(upstream.url, tmp_path, env={"MLMON_FEEDBACK_TOKEN": "t0ken"}) as running:
        item = {"request_id": "r", "label": 1}
        assert post_feedback(running.url, item)[0] == 401
        assert post_feedback(running.url, item, token="wrong")[0] == 401
        assert post_feedback(running.url, item, token="t0ken") == (200, {"accepted": 1})
        status, error = post_feedback(running.url, {"label": 1}, token="t0ken")
        assert status == 400
        assert "request_id" in str(error["error"])


def test_store_down_while_traffic_flows_then_every_record_arrives_exactly_once(
    upstream: RawUpstream, tmp_path: Path, schema_file: Path
) -> None:
    db = tmp_path / "mlmon.db"
    with sidecar(upstream.url, tmp_path, args=["--schema", str(schema_file)]) as running:
        assert predict(running.url, "before") == 200
        wait_stored(db, 3)
        with sqlite_locked(db):
            statuses = []
            for i in range(40):
                statuses.append(predict(running.url, f"during-{i}"))
                time.sleep(0.25)  # 10 s of traffic while the store is down
            spooled = wait_for(running.url, lambda s: value(
                s, "mlmon_log_records_total", outcome="spooled") > 0)  # fmt: skip
            assert value(spooled, "mlmon_log_spool_bytes") > 0
        assert statuses == [200] * 40  # no client request failed
        records = wait_stored(db, 123, timeout=60)
        samples = scrape(running.url)
    assert len(records) == 123
    assert {f"during-{i}:{row}" for i in range(40) for row in range(3)} <= set(records)
    assert value(samples, "mlmon_log_records_total", outcome="dropped") == 0
    assert value(samples, "mlmon_log_records_total", outcome="replayed") >= value(
        samples, "mlmon_log_records_total", outcome="spooled"
    )


def test_after_sigkill_a_restart_replays_the_spool(
    upstream: RawUpstream, tmp_path: Path, schema_file: Path
) -> None:
    db = tmp_path / "mlmon.db"
    port = free_port()
    args = ["--schema", str(schema_file)]
    with sidecar(upstream.url, tmp_path, args=args, port=port) as running:
        assert predict(running.url, "warm") == 200
        wait_stored(db, 3)
        with sqlite_locked(db):
            for i in range(30):
                assert predict(running.url, f"killed-{i}") == 200
            wait_for(running.url, lambda s: value(
                s, "mlmon_log_records_total", outcome="spooled") == 90, timeout=30)  # fmt: skip
            kill_tree(running.process.pid)
            running.process.wait(10)
    assert len(stored(db)) == 3
    with sidecar(upstream.url, tmp_path, args=args, port=port):
        records = wait_stored(db, 93, timeout=60)
    assert {f"killed-{i}:{row}" for i in range(30) for row in range(3)} <= set(records)
    assert len(records) == 93
