"""A shadow model logged next to the primary in a real SQLite input log: the evaluation
compares them, /metrics exports the comparison, the page and the report JSON show it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.records import GroundTruth, LogRecord, PredictionValue
from exporter.store.sqlite.log import SqliteLog
from stats_service.service.app import create_app
from stats_service.service.runner import Runner, prepare_models
from stats_service.settings import load
from stats_service.windows.candidates import SqliteCandidateReader
from stats_service.windows.sqlite import SqliteWindowReader
from tests.support.credit_log import NOW, log, rows, write_baseline
from tests.support.scrape import Samples, value

ROWS = 500
OFFSET = 0.05  # the shadow predicts age / 100 + OFFSET where the primary says age / 100


def shadow_records(data: list[tuple[float, str]]) -> list[LogRecord]:
    return [
        LogRecord(
            id=f"r{i}:0:shadow:m2",
            timestamp=NOW - 600 + i * 0.1 + 0.001,
            request_id=f"r{i}",
            row=0,
            model="credit",
            model_version="2",
            protocol="v2",
            status=200,
            latency_ms=2.0,
            features={"age": age, "country": country},
            prediction=PredictionValue(value=age / 100 + OFFSET),
            role="shadow",
            candidate="m2",
        )
        for i, (age, country) in enumerate(data)
    ]


@pytest.fixture
def client(tmp_path: Path) -> tuple[FlaskClient, Runner]:
    settings = load(
        environ={
            "MLMON_BASELINES": f"credit={write_baseline(tmp_path)}",
            "MLMON_STORE": f"sqlite:///{tmp_path / 'mlmon.db'}",
            "MLMON_WINDOWS": "1h",
        }
    )
    db = tmp_path / "mlmon.db"
    data = rows(np.random.default_rng(7), ROWS)
    log(db, data)
    with SqliteLog(db) as store:
        store.write(shadow_records(data))
        # Ground truth for the first 200 requests: exactly what the primary predicted.
        store.add_ground_truth(
            [GroundTruth(f"r{i}:0", age / 100, NOW) for i, (age, _) in enumerate(data[:200])]
        )
    runner = Runner(
        prepare_models(settings),
        settings.window_specs,
        SqliteWindowReader(db),
        candidates=SqliteCandidateReader(db),
        clock=lambda: NOW,
    )
    return create_app(runner, runner.contexts).test_client(), runner


def test_a_shadow_is_compared_with_the_primary_and_exported(
    client: tuple[FlaskClient, Runner],
) -> None:
    http, runner = client
    evaluation = runner.evaluate_once()
    # The shadows are not counted as rows of the model's window.
    assert [(r.window, r.status, r.rows) for r in evaluation.results] == [("1h", "ok", ROWS)]
    (comparison,) = evaluation.comparisons
    assert (comparison.candidate, comparison.role, comparison.status) == ("m2", "shadow", "ok")
    assert comparison.mean_abs_diff["value"] == pytest.approx(OFFSET)
    assert comparison.primary_performance is not None
    assert comparison.candidate_performance is not None
    assert comparison.primary_performance.metrics["mae"] == pytest.approx(0.0)
    assert comparison.candidate_performance.metrics["mae"] == pytest.approx(OFFSET)

    text = http.get("/metrics").get_data(as_text=True)
    samples: Samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert not any(np.isnan(v) for v in samples.values())
    which = {"model": "credit", "candidate": "m2", "window": "1h"}
    assert value(samples, "mlmon_candidate_samples", role="shadow", **which) == ROWS
    assert value(samples, "mlmon_candidate_samples", role="primary", **which) == ROWS
    assert value(samples, "mlmon_candidate_mean_abs_diff", field="value", **which) == (
        pytest.approx(OFFSET)
    )
    assert value(samples, "mlmon_candidate_prediction_distance", method="ks", **which) > 0
    assert value(
        samples, "mlmon_candidate_performance", role="shadow", metric="mae", **which
    ) == pytest.approx(OFFSET)
    # Numeric predictions: no label to agree on, so no agreement series (never NaN).
    assert value(samples, "mlmon_candidate_agreement_ratio", **which) == 0

    page = http.get("/").get_data(as_text=True)
    assert "Candidates against the primary" in page
    assert "data-candidate='m2' data-role='shadow'" in page
    (reported,) = http.get("/api/v1/report").get_json()["comparisons"]
    assert reported["candidate"] == "m2" and reported["start"].endswith("Z")
    assert reported["candidate_performance"]["metrics"]["mae"] == pytest.approx(OFFSET)


def test_without_candidates_nothing_is_compared(tmp_path: Path) -> None:
    settings = load(
        environ={
            "MLMON_BASELINES": f"credit={write_baseline(tmp_path)}",
            "MLMON_STORE": f"sqlite:///{tmp_path / 'mlmon.db'}",
            "MLMON_WINDOWS": "1h",
        }
    )
    db = tmp_path / "mlmon.db"
    log(db, rows(np.random.default_rng(8), 200))
    runner = Runner(
        prepare_models(settings),
        settings.window_specs,
        SqliteWindowReader(db),
        candidates=SqliteCandidateReader(db),
        clock=lambda: NOW,
    )
    evaluation = runner.evaluate_once()
    assert evaluation.comparisons == () and evaluation.errors == 0
    assert "Candidates" not in create_app(runner, runner.contexts).test_client().get("/").text
