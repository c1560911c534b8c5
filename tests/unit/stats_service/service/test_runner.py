"""The evaluation loop and its HTTP face over a real SQLite input log and a real baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.records import GroundTruth
from exporter.store.sqlite.log import SqliteLog
from stats_service.service.app import create_app
from stats_service.service.runner import Runner, prepare_models
from stats_service.settings import StatsSettings, load
from stats_service.windows.sqlite import SqliteWindowReader
from tests.support.credit_log import NOW, log, rows, write_baseline
from tests.support.scrape import Samples, value


@pytest.fixture
def settings(tmp_path: Path) -> StatsSettings:
    return load(
        environ={
            "MLMON_BASELINES": f"credit={write_baseline(tmp_path)}",
            "MLMON_STORE": f"sqlite:///{tmp_path / 'mlmon.db'}",
            "MLMON_WINDOWS": "last_500,1h",
        }
    )


def runner_for(settings: StatsSettings, db: Path) -> Runner:
    return Runner(
        prepare_models(settings),
        settings.window_specs,
        SqliteWindowReader(db),
        clock=lambda: NOW,
    )


def test_each_window_is_evaluated_and_drift_is_found_on_the_shifted_feature(
    settings: StatsSettings, tmp_path: Path
) -> None:
    db = tmp_path / "mlmon.db"
    rng = np.random.default_rng(2)
    log(db, rows(rng, 500))
    runner = runner_for(settings, db)
    first = runner.evaluate_once()
    assert [(r.window, r.status, r.rows) for r in first.results] == [
        ("last_500", "ok", 500),
        ("1h", "ok", 500),
    ]
    assert not any(f.detected for r in first.results for f in r.features)

    log(db, rows(rng, 500, shift=10.0), start=500)
    newest, hour = runner.evaluate_once().results
    assert {f.feature: f.detected for f in newest.features} == {"age": True, "country": False}
    assert newest.drift_share == 0.5
    assert hour.rows == 1_000
    assert runner.evaluations_total == 2 and runner.errors_total == 0


def test_an_unreadable_store_is_an_error_result_counted_then_recovered(
    settings: StatsSettings, tmp_path: Path
) -> None:
    db = tmp_path / "mlmon.db"
    db.write_bytes(b"this is not a database" * 100)
    runner = runner_for(settings, db)
    evaluation = runner.evaluate_once()
    assert [r.status for r in evaluation.results] == ["error", "error"]
    assert evaluation.errors == 2 and runner.errors_total == 2
    assert "database" in evaluation.results[0].message

    db.unlink()
    log(db, rows(np.random.default_rng(3), 300))
    assert [r.status for r in runner.evaluate_once().results] == ["ok", "ok"]
    assert runner.errors_total == 2


def test_too_few_rows_is_insufficient(settings: StatsSettings, tmp_path: Path) -> None:
    db = tmp_path / "mlmon.db"
    log(db, rows(np.random.default_rng(4), 50))
    result = runner_for(settings, db).evaluate_once().results[0]
    assert result.status == "insufficient"
    assert result.features == ()
    assert result.message == "50 rows, fewer than min_samples=100"


@pytest.fixture
def client(settings: StatsSettings, tmp_path: Path) -> tuple[FlaskClient, Runner]:
    db = tmp_path / "mlmon.db"
    log(db, rows(np.random.default_rng(5), 500))
    runner = runner_for(settings, db)
    return create_app(runner, runner.contexts).test_client(), runner


def test_readyz_waits_for_the_first_evaluation(client: tuple[FlaskClient, Runner]) -> None:
    http, runner = client
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 503
    runner.evaluate_once()
    assert http.get("/readyz").status_code == 200


def test_metrics_show_the_latest_evaluation_without_nan(
    client: tuple[FlaskClient, Runner],
) -> None:
    http, runner = client
    runner.evaluate_once()
    text = http.get("/metrics").get_data(as_text=True)
    samples: Samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert not any(np.isnan(v) for v in samples.values())
    window = {"model": "credit", "window": "last_500"}
    assert value(samples, "mlmon_window_samples", **window) == 500
    assert value(samples, "mlmon_window_status", status="ok", **window) == 1
    assert value(samples, "mlmon_window_status", status="error", **window) == 0
    assert value(samples, "mlmon_feature_drift_detected", feature="age", **window) == 0
    assert value(samples, "mlmon_evaluations_total") == 1
    assert value(samples, "mlmon_last_evaluation_timestamp_seconds") == NOW
    names = {name for name, _ in samples}
    assert {
        "mlmon_feature_drift_score",
        "mlmon_feature_drift_threshold",
        "mlmon_feature_drift_pvalue",
        "mlmon_dataset_drift_share",
        "mlmon_prediction_drift_score",
        "mlmon_feature_missing_ratio",
        "mlmon_baseline_info",
        "mlmon_evaluation_duration_seconds",
    } <= names


def test_report_and_baseline_endpoints(client: tuple[FlaskClient, Runner]) -> None:
    http, runner = client
    assert http.get("/api/v1/report").get_json() == {"evaluated_at": None, "results": []}
    runner.evaluate_once()
    report = http.get("/api/v1/report?window=1h").get_json()
    (result,) = report["results"]
    assert result["window"] == "1h" and result["model"] == "credit"
    age = result["features"][0]
    assert age["feature"] == "age"
    assert sum(age["histogram"]["window"]) == pytest.approx(1.0)
    assert http.get("/api/v1/report?model=other").get_json()["results"] == []

    baseline = http.get("/api/v1/baseline").get_json()["models"]["credit"]
    assert [f["name"] for f in baseline["features"]] == ["age", "country"]
    assert "sample" not in baseline["features"][0]
    with_samples = http.get("/api/v1/baseline?samples=1").get_json()["models"]["credit"]
    assert len(with_samples["features"][0]["sample"]) > 0


def test_report_says_the_task_was_inferred_from_the_labelled_rows(
    client: tuple[FlaskClient, Runner], tmp_path: Path
) -> None:
    # The credit schema has no prediction section; its predictions (age / 100) lie in
    # [0, 1] and the ground truth posted for them is 0/1: a binary classifier.
    http, runner = client
    data = rows(np.random.default_rng(5), 500)  # what the fixture logged
    truth = [int(age > 40) for age, _ in data]
    with SqliteLog(tmp_path / "mlmon.db") as store:
        store.add_ground_truth(
            [GroundTruth(f"r{i}:0", label, NOW) for i, label in enumerate(truth)]
        )
    runner.evaluate_once()
    (result,) = http.get("/api/v1/report?window=last_500").get_json()["results"]
    performance = result["performance"]
    assert (performance["task"], performance["task_source"]) == ("binary", "inferred")
    assert performance["samples"] == 500
    assert "predictions in [0, 1]" in performance["task_reason"]
    # Prediction age / 100 >= 0.5 against age > 40: right unless 40 < age < 50.
    expected = np.mean([(age / 100 >= 0.5) == (age > 40) for age, _ in data])
    assert performance["metrics"]["accuracy"] == pytest.approx(expected)
