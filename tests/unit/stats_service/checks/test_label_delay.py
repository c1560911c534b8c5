"""Label delay (issue 15): how old rows are when their labels arrive, per window, from a
real SQLite input log through the evaluation loop to /metrics and /api/v1/report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.records import GroundTruth
from exporter.store.sqlite.log import SqliteLog
from stats_service.checks.model_health import label_delay
from stats_service.checks.results import LabelDelay
from stats_service.service.app import create_app
from stats_service.service.runner import Runner, prepare_models
from stats_service.settings import load
from stats_service.windows.sqlite import SqliteWindowReader
from tests.support.credit_log import NOW, log, rows, write_baseline


def test_quantiles_are_numpys_over_the_known_delays() -> None:
    delays = np.random.default_rng(3).exponential(120.0, 1001)
    with_unknown = np.concatenate([delays, [np.nan] * 50])
    result = label_delay(with_unknown)
    assert result.count == 1001
    quantiles = np.quantile(delays, [0.5, 0.9, 0.99]).tolist()
    assert [result.p50, result.p90, result.p99] == pytest.approx(quantiles)
    assert (result.max, result.mean) == pytest.approx((delays.max(), delays.mean()))


@pytest.mark.parametrize("delays", [np.empty(0), np.full(5, np.nan)], ids=["none", "unknown"])
def test_no_known_delay_is_a_count_of_zero_not_nan(delays: np.ndarray) -> None:
    assert label_delay(delays) == LabelDelay(count=0)


def test_one_label_is_every_quantile() -> None:
    assert label_delay(np.array([4.0])) == LabelDelay(1, 4.0, 4.0, 4.0, 4.0, 4.0)


def evaluated(tmp_path: Path) -> FlaskClient:
    """The stats service's HTTP face after one evaluation of tmp_path/mlmon.db."""
    db = tmp_path / "mlmon.db"
    settings = load(
        environ={
            "MLMON_BASELINES": f"credit={write_baseline(tmp_path)}",
            "MLMON_STORE": f"sqlite:///{db}",
            "MLMON_WINDOWS": "1h",
        }
    )
    contexts = prepare_models(settings)
    runner = Runner(contexts, settings.window_specs, SqliteWindowReader(db), clock=lambda: NOW)
    runner.evaluate_once()
    return create_app(runner, contexts).test_client()


def test_delays_reach_metrics_and_the_report(tmp_path: Path) -> None:
    db = tmp_path / "mlmon.db"
    log(db, rows(np.random.default_rng(2), 400))  # r{i}: at NOW - 600 + i * 0.1
    # Labels for every other row, i seconds after it (row 0: at once); row 1's label is
    # dated before its row (a client's clock): a delay of 0, never negative.
    labelled = range(0, 400, 2)
    with SqliteLog(db) as store:
        store.add_ground_truth(
            [GroundTruth(f"r{i}:0", "ok", NOW - 600 + i * 0.1 + i) for i in labelled]
            + [GroundTruth("r1:0", "ok", NOW - 700)]
        )
    expected = np.array([*map(float, labelled), 0.0])
    http = evaluated(tmp_path)

    (result,) = http.get("/api/v1/report").get_json()["results"]
    delay = result["label_delay"]
    assert delay["count"] == len(expected)
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert delay[key] == pytest.approx(np.quantile(expected, q), abs=1e-3), key
    assert delay["max"] == pytest.approx(398.0, abs=1e-3)

    text = http.get("/metrics").get_data(as_text=True)
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "mlmon_label_delay_seconds"
    ]
    assert family.type == "summary"
    samples = {(s.name, s.labels.get("quantile")): s.value for s in family.samples}
    assert samples[("mlmon_label_delay_seconds", "0.9")] == pytest.approx(delay["p90"])
    assert samples[("mlmon_label_delay_seconds_count", None)] == len(expected)
    assert samples[("mlmon_label_delay_seconds_sum", None)] == pytest.approx(expected.sum())
    assert "label delay p50" in http.get("/").get_data(as_text=True)


def test_a_window_without_labels_exports_a_count_of_zero(tmp_path: Path) -> None:
    log(tmp_path / "mlmon.db", rows(np.random.default_rng(2), 200))
    http = evaluated(tmp_path)
    (result,) = http.get("/api/v1/report").get_json()["results"]
    assert result["label_delay"] == {
        "count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None
    }  # fmt: skip
    text = http.get("/metrics").get_data(as_text=True)
    assert 'mlmon_label_delay_seconds_count{model="credit",window="1h"} 0.0' in text
    assert "quantile=" not in text
