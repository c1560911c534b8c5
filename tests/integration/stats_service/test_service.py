"""Sidecar + SQLite input log + stats service, all live on 127.0.0.1: traffic without
drift, then with drift on one feature, and the gauges a user alerts on move as expected."""

from __future__ import annotations

import http.client
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.processes import VENV_BIN, sidecar, stats_service
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import Samples, assert_promtool_accepts, scrape, value, wait_for

SCHEMA = """
model: credit
features:
  - {name: age, type: numeric}
  - {name: income, type: numeric}
  - {name: country, type: categorical}
"""
COUNTRIES = ["fr", "de", "us"]
SHARES = [0.5, 0.3, 0.2]
WINDOW_ROWS = 400
STATS_CONFIG = f"""
windows: [last_{WINDOW_ROWS}, 1h]
interval_s: 0.5
min_samples: 100
"""


def draw(rng: np.random.Generator, n: int, age_shift: float = 0.0) -> list[dict[str, Any]]:
    ages = rng.normal(40 + age_shift, 10, n)
    incomes = rng.lognormal(10, 0.5, n)
    countries = rng.choice(COUNTRIES, n, p=SHARES)
    return [
        {"age": round(float(a), 2), "income": round(float(i), 2), "country": str(c)}
        for a, i, c in zip(ages, incomes, countries, strict=True)
    ]


def predictions(req: RawRequest) -> bytes:
    rows = json.loads(req.body)["instances"]
    body = json.dumps({"predictions": [row["age"] / 100 for row in rows]}).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    schema = tmp_path / "credit.yaml"
    schema.write_text(SCHEMA)
    training = tmp_path / "train.csv"
    rows = draw(np.random.default_rng(1), 20_000)
    training.write_text(
        "age,income,country,prediction\n"
        + "".join(f"{r['age']},{r['income']},{r['country']},{r['age'] / 100}\n" for r in rows)
    )
    out = tmp_path / "baseline.json"
    subprocess.run(
        [
            VENV_BIN / "mlmon-stats",
            "baseline",
            "--schema",
            schema,
            "--data",
            training,
            "--out",
            out,
            "--prediction-column",
            "prediction",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.fixture
def stack(tmp_path: Path, baseline: Path) -> Iterator[tuple[str, str]]:
    schema = tmp_path / "credit.yaml"
    with (
        RawUpstream(predictions) as upstream,
        sidecar(upstream.url, tmp_path, args=["--schema", str(schema)]) as proxy,
        stats_service(
            tmp_path,
            baselines={"credit": baseline},
            store=f"sqlite:///{tmp_path}/mlmon.db",
            config=STATS_CONFIG,
        ) as stats,
    ):
        yield proxy.url, stats


def send(url: str, rows: list[dict[str, object]], batch: int = 20) -> None:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    for start in range(0, len(rows), batch):
        body = json.dumps({"instances": rows[start : start + batch]})
        connection.request("POST", "/v1/models/credit:predict", body)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()


def detected(samples: Samples, feature: str, window: str = f"last_{WINDOW_ROWS}") -> float:
    return value(samples, "mlmon_feature_drift_detected", feature=feature, window=window)


def evaluated(samples: Samples, rows: int, window: str = f"last_{WINDOW_ROWS}") -> bool:
    return value(samples, "mlmon_window_samples", model="credit", window=window) >= rows


def test_window_without_traffic_is_insufficient_not_evaluated(stack: tuple[str, str]) -> None:
    _, stats = stack
    samples = scrape(stats)
    window = {"model": "credit", "window": f"last_{WINDOW_ROWS}"}
    assert value(samples, "mlmon_window_status", status="insufficient", **window) == 1
    assert value(samples, "mlmon_window_status", status="ok", **window) == 0
    assert not any(name == "mlmon_feature_drift_score" for name, _ in samples)
    assert value(samples, "mlmon_baseline_info", model="credit") == 1


def test_gauges_show_no_drift_then_drift_on_the_shifted_feature_only(
    stack: tuple[str, str],
) -> None:
    proxy, stats = stack
    rng = np.random.default_rng(2)
    send(proxy, draw(rng, WINDOW_ROWS))
    samples = wait_for(stats, lambda s: evaluated(s, WINDOW_ROWS), timeout=60)
    assert evaluated(samples, WINDOW_ROWS)
    for feature in ("age", "income", "country"):
        assert detected(samples, feature) == 0, feature
    assert value(samples, "mlmon_dataset_drift_share", window=f"last_{WINDOW_ROWS}") == 0
    assert value(samples, "mlmon_prediction_drift_detected", window=f"last_{WINDOW_ROWS}") == 0
    assert value(samples, "mlmon_feature_missing_ratio", feature="age") == 0

    # The newest WINDOW_ROWS rows are now all from the shifted distribution.
    send(proxy, draw(rng, WINDOW_ROWS, age_shift=10.0))
    samples = wait_for(stats, lambda s: detected(s, "age") == 1, timeout=60)
    assert detected(samples, "age") == 1
    assert detected(samples, "income") == 0
    assert detected(samples, "country") == 0
    labels = {"feature": "age", "window": f"last_{WINDOW_ROWS}", "method": "jensenshannon"}
    score = value(samples, "mlmon_feature_drift_score", **labels)
    assert score > value(samples, "mlmon_feature_drift_threshold", **labels)
    assert value(samples, "mlmon_feature_drift_pvalue", method="ks", feature="age") < 1e-6
    assert value(samples, "mlmon_dataset_drift_share", window=f"last_{WINDOW_ROWS}") == (
        pytest.approx(1 / 3)
    )
    # The shifted ages also shift the model's predictions (age / 100).
    assert value(samples, "mlmon_prediction_drift_detected", window=f"last_{WINDOW_ROWS}") == 1
    assert value(samples, "mlmon_window_samples", window="1h") == 2 * WINDOW_ROWS

    with urllib.request.urlopen(f"{stats}/api/v1/report?window=last_{WINDOW_ROWS}") as response:
        report = json.load(response)
    (result,) = report["results"]
    age = next(f for f in result["features"] if f["feature"] == "age")
    assert age["detected"] is True
    histogram = age["histogram"]
    assert len(histogram["bins"]) == len(histogram["baseline"]) == len(histogram["window"])
    # Shifted 1 std up: the top bins hold far more of the window than of the baseline.
    assert histogram["window"][-2] > 2 * histogram["baseline"][-2]


def test_metrics_pass_promtool_check_metrics(stack: tuple[str, str]) -> None:
    proxy, stats = stack
    send(proxy, draw(np.random.default_rng(3), WINDOW_ROWS))
    wait_for(stats, lambda s: evaluated(s, WINDOW_ROWS), timeout=60)
    with urllib.request.urlopen(f"{stats}/metrics") as response:
        exposition = response.read()
    assert b"mlmon_feature_drift_score" in exposition
    assert_promtool_accepts(exposition)
