"""`export`, `baseline --store`, `check` and `replay` on a real SQLite input log (written by
the sidecar's own `SqliteLog`) and real model servers on 127.0.0.1."""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from exporter.records import GroundTruth, LogRecord, PredictionValue, StoreColumns
from exporter.store.sqlite.log import SqliteLog
from stats_service.cli import main
from stats_service.offline.past_window import WindowSpecError, parse_past_window
from tests.support.model_apps import sigmoid
from tests.support.model_servers import ModelServer
from tests.support.processes import free_port

SCHEMA = """
model: credit
features:
  - {name: x1, type: numeric}
  - {name: x2, type: numeric, nullable: true}
  - {name: country, type: categorical, categories: [fr, de, us]}
"""
ROWS = 600
FLIPPED = 30  # rows whose logged class differs from what the test model answers


def log_records(db: Path, now: float, *, flip: int = 0) -> None:
    rng = np.random.default_rng(3)
    records = []
    for i in range(ROWS):
        x1, x2 = float(rng.normal()), float(rng.normal())
        features: dict[str, float | str | None] = {
            "x1": x1,
            "x2": None if i % 10 == 0 else x2,
            "country": ["fr", "de", "us"][i % 3],
        }
        # What the v1 test model answers for these inputs: [1 - p, p], p = sigmoid(sum).
        p = sigmoid(x1 + (0.0 if features["x2"] is None else x2))
        label = "1" if p >= 0.5 else "0"
        if i < flip:
            label = "0" if label == "1" else "1"
        records.append(
            LogRecord(
                id=f"req-{i}:0",
                timestamp=now - 600 + i,
                request_id=f"req-{i}",
                row=0,
                model="credit",
                model_version="7",
                protocol="v1",
                status=200,
                latency_ms=2.0,
                features=features,
                prediction=PredictionValue(value=p, label=label, score=max(p, 1 - p)),
            )
        )
    with SqliteLog(db) as log:
        log.prepare(StoreColumns("credit", ("x1", "x2"), ("country",)))
        log.write(records)
        log.add_ground_truth(
            [GroundTruth(f"req-{i}:0", int(rng.random() < 0.5), now) for i in range(0, ROWS, 4)]
        )


@pytest.fixture
def store(tmp_path: Path) -> str:
    db = tmp_path / "mlmon.db"
    log_records(db, time.time())
    return f"sqlite:///{db}"


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    path = tmp_path / "credit.yaml"
    path.write_text(SCHEMA)
    return path


def export(store: str, out: Path, window: str = "1h", model: str = "credit") -> int:
    return main(
        ["export", "--store", store, "--model", model, "--window", window, "--out", str(out)]
    )


def test_export_to_parquet_holds_every_row_as_logged(store: str, tmp_path: Path) -> None:
    out = tmp_path / "window.parquet"
    assert export(store, out) == 0
    table = pq.read_table(out)
    assert table.num_rows == ROWS
    assert table.column_names[:11] == [
        "timestamp", "request_id", "row", "model_version", "protocol", "role", "candidate",
        "prediction", "prediction_label", "prediction_score", "label",
    ]  # fmt: skip
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows[:3]] == ["req-0", "req-1", "req-2"]
    assert {r["protocol"] for r in rows} == {"v1"}
    assert {r["role"] for r in rows} == {"primary"}
    assert rows[0]["x2"] is None and rows[1]["x2"] is not None
    assert sum(r["label"] is not None for r in rows) == ROWS // 4
    assert list(tmp_path.glob(".*partial")) == []


def test_export_to_csv_of_the_newest_rows(store: str, tmp_path: Path) -> None:
    out = tmp_path / "window.csv"
    assert export(store, out, window="last_50") == 0
    table = pa_csv.read_csv(out)
    assert table.num_rows == 50
    assert table.column("request_id").to_pylist()[-1] == f"req-{ROWS - 1}"


def test_csv_export_is_arrows_csv_of_the_parquet_export(store: str, tmp_path: Path) -> None:
    """The CSV writer formats slices of each batch in parallel: the file must still be
    the one a single Arrow CSV writer makes of the same rows, in order, nulls included."""
    assert export(store, tmp_path / "window.parquet") == 0
    assert export(store, tmp_path / "window.csv") == 0
    table = pq.read_table(tmp_path / "window.parquet")
    plain = table.cast(
        pa.schema(
            [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
        )
    )
    expected = pa.BufferOutputStream()
    pa_csv.write_csv(plain, expected)
    assert (tmp_path / "window.csv").read_bytes() == expected.getvalue().to_pybytes()


def test_past_window_forms() -> None:
    assert parse_past_window("1h", 7200.0).start_ts == 3600.0
    assert parse_past_window("last_5", 10.0).rows == 5
    window = parse_past_window("2026-12-01T00:00/2026-12-02T00:00", 0.0)
    assert window.end_ts - window.start_ts == 86400.0
    for bad in ("1x", "2026-12-02/2026-12-01", "yesterday/today", "0h"):
        with pytest.raises(WindowSpecError):
            parse_past_window(bad, 0.0)


@pytest.mark.parametrize(
    ("model", "window", "out", "message"),
    [
        ("nobody", "1h", "x.parquet", "model 'nobody' has no records"),
        ("credit", "2020-01-01/2020-01-02", "x.parquet", "holds no records"),
        ("credit", "an hour", "x.parquet", "expected a duration such as 1h"),
        ("credit", "1h", "missing/dir/x.parquet", "cannot be written"),
        ("credit", "1h", "x.json", "expected a name ending in .parquet or .csv"),
    ],
)
def test_bad_input_says_why_and_leaves_no_file(
    store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    window: str,
    out: str,
    message: str,
) -> None:
    assert export(store, tmp_path / out, window=window, model=model) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / out).exists()
    assert list(tmp_path.rglob("*.partial")) == []


def test_baseline_from_the_store_equals_the_one_from_the_exported_file(
    store: str, schema: Path, tmp_path: Path
) -> None:
    window = "2000-01-01/2100-01-01"
    exported = tmp_path / "window.parquet"
    assert export(store, exported, window=window) == 0
    from_file, from_store = tmp_path / "file.json", tmp_path / "store.json"
    common = ["baseline", "--schema", str(schema)]
    assert main([*common, "--data", str(exported), "--out", str(from_file)]) == 0
    assert (
        main(
            [
                *common,
                "--store",
                store,
                "--model",
                "credit",
                "--window",
                window,
                "--out",
                str(from_store),
            ]
        )
        == 0
    )
    a, b = json.loads(from_file.read_text()), json.loads(from_store.read_text())
    for document in (a, b):
        document.pop("created_at")
        document["data"].pop("path")
    assert a == b
    features = {f["name"]: f for f in a["features"]}
    assert features["x2"]["missing_count"] == ROWS // 10
    assert a["prediction"]["name"] == "prediction_label"
    assert not any(code.startswith("unexpected_field") for code in a["issue_counts"])


def test_check_writes_one_junit_case_per_feature_and_check(
    store: str, schema: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "window.parquet"
    assert export(store, exported, window="2000-01-01/2100-01-01") == 0
    baseline = tmp_path / "baseline.json"
    assert (
        main(["baseline", "--schema", str(schema), "--data", str(exported), "--out", str(baseline)])
        == 0
    )
    junit = tmp_path / "check.xml"
    assert (
        main(
            [
                "check",
                "--baseline",
                str(baseline),
                "--data",
                str(exported),
                "--junit-xml",
                str(junit),
            ]
        )
        == 0
    )
    cases = ET.parse(junit).getroot().findall(".//testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    for feature in ("x1", "x2", "country"):
        assert (f"credit.{feature}", "quality") in names
        assert (f"credit.{feature}", "drift") in names
    assert not ET.parse(junit).getroot().findall(".//failure")
    # Data where x1 moved by 3 standard deviations and a country the schema does not know.
    drifted = tmp_path / "drifted.csv"
    rng = np.random.default_rng(9)
    drifted.write_text(
        "x1,x2,country\n"
        + "".join(
            f"{rng.normal() + 3:.4f},{rng.normal():.4f},{'es' if i % 5 == 0 else 'fr'}\n"
            for i in range(400)
        )
    )
    capsys.readouterr()
    assert (
        main(
            [
                "check",
                "--baseline",
                str(baseline),
                "--data",
                str(drifted),
                "--junit-xml",
                str(junit),
            ]
        )
        == 1
    )
    failures = {
        (c.get("classname"), c.get("name")): c.find("failure")
        for c in ET.parse(junit).getroot().iter("testcase")
    }
    assert failures[("credit.x1", "drift")] is not None
    assert "threshold" in failures[("credit.x1", "drift")].get("message", "")
    unseen = failures[("credit.country", "quality")]
    assert unseen is not None and "unseen_category: 20.00% of 400 rows (80)" in unseen.get(
        "message", ""
    )
    assert failures[("credit.x2", "quality")] is None
    assert "FAIL credit.x1 drift" in capsys.readouterr().out


def test_replay_agrees_with_the_same_model_and_gates_on_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "flipped.db"
    log_records(db, time.time(), flip=FLIPPED)
    exported = tmp_path / "window.parquet"
    assert export(f"sqlite:///{db}", exported) == 0
    capsys.readouterr()
    with ModelServer("v1", model="credit") as server:
        code = main(["replay", "--data", str(exported), "--candidate", server.url, "--json"])
        result = json.loads(capsys.readouterr().out)
        assert code == 0
        assert result["answered"] == ROWS and result["failed"] == 0
        assert result["agreement"] == pytest.approx(1 - FLIPPED / ROWS)
        assert result["kind"] == "classification"
        assert {d["request_id"] for d in result["differences"]} <= {
            f"req-{i}" for i in range(FLIPPED)
        }
        assert result["candidate_performance"]["samples"] == ROWS // 4
        gate = ["--min-agreement", "0.99"]
        assert main(["replay", "--data", str(exported), "--candidate", server.url, *gate]) == 1
        assert "FAIL agreement 0.95 below 0.99" in capsys.readouterr().out
        # A protocol the server does not speak answers 404 on every request.
        assert (
            main(["replay", "--data", str(exported), "--candidate", server.url, "--protocol", "v2"])
            == 2
        )
        assert "the candidate answered no row" in capsys.readouterr().err
    assert math.isfinite(result["distance"]["score"])


def test_replay_against_a_candidate_that_is_down(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "window.csv"
    assert export(store, exported) == 0
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["replay", "--data", str(exported), "--candidate", url, "--model", "credit"]) == 2
    assert f"candidate {url} is not reachable" in capsys.readouterr().err
