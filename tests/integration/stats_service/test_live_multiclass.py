"""Performance without labels on live multiclass traffic, end to end (issue 15): a real
sidecar in front of a 3-class model answering over the Open Inference Protocol logs
each row's class probabilities to SQLite; some labels come back later through
/feedback; a live `mlmon-stats serve` estimates the window's performance (CBPE over
the three classes) and exports how late the labels came (`mlmon_label_delay_seconds`,
`label_delay` in /api/v1/report)."""

from __future__ import annotations

import csv
import http.client
import json
import math
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.processes import VENV_BIN, sidecar, stats_service
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import Samples, assert_promtool_accepts, value, wait_for

CLASSES = ("setosa", "versicolor", "virginica")
SCHEMA = """
model: iris
features:
  - {name: x1, type: numeric}
  - {name: x2, type: numeric}
prediction: {task: multiclass, classes: [setosa, versicolor, virginica]}
"""
STATS_CONFIG = """
windows: [1h]
interval_s: 0.5
min_samples: 100
"""
ROWS, BATCH, LABELLED = 600, 20, 300
LABEL_WAIT_S = 1.5  # labels come at least this long after their rows


def probabilities(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The model: a softmax over (2 x1, 2 x2, 0)."""
    logits = np.column_stack([2 * x1, 2 * x2, np.zeros_like(x1)])
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def infer(request: RawRequest) -> bytes:
    """A v2 server: a label output (class index) and a [rows, 3] probability output."""
    inputs = {tensor["name"]: tensor["data"] for tensor in json.loads(request.body)["inputs"]}
    p = probabilities(np.asarray(inputs["x1"]), np.asarray(inputs["x2"]))
    body = json.dumps(
        {
            "model_name": "iris",
            "outputs": [
                {
                    "name": "label",
                    "shape": [len(p)],
                    "datatype": "INT64",
                    "data": p.argmax(axis=1).tolist(),
                },
                {
                    "name": "probabilities",
                    "shape": list(p.shape),
                    "datatype": "FP64",
                    "data": p.ravel().tolist(),
                },
            ],
        }
    ).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs, and labels drawn from the model's own probabilities (it is calibrated)."""
    x1, x2 = rng.normal(0, 1, n).round(4), rng.normal(0, 1, n).round(4)
    p = probabilities(x1, x2)
    truth = [CLASSES[rng.choice(3, p=row)] for row in p]
    return x1, x2, truth


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    (tmp_path / "iris.yaml").write_text(SCHEMA)
    x1, x2, truth = draw(np.random.default_rng(1), 6000)
    p = probabilities(x1, x2)
    with (tmp_path / "train.csv").open("w", newline="") as training:
        writer = csv.writer(training)
        writer.writerow(["x1", "x2", *(f"proba_{c}" for c in CLASSES), "prediction", "label"])
        for i in range(len(x1)):
            predicted = CLASSES[int(p[i].argmax())]
            writer.writerow([x1[i], x2[i], *p[i].round(6), predicted, truth[i]])
    out = tmp_path / "baseline.json"
    built = subprocess.run(
        [VENV_BIN / "mlmon-stats", "baseline", "--schema", tmp_path / "iris.yaml",
         "--data", tmp_path / "train.csv", "--out", out,
         "--prediction-column", "prediction", "--label-column", "label"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture
def stack(tmp_path: Path, baseline: Path) -> Iterator[tuple[str, str]]:
    with (
        RawUpstream(infer) as upstream,
        sidecar(upstream.url, tmp_path, args=["--schema", str(tmp_path / "iris.yaml")]) as proxy,
        stats_service(
            tmp_path,
            baselines={"iris": baseline},
            store=f"sqlite:///{tmp_path}/mlmon.db",
            config=STATS_CONFIG,
        ) as stats,
    ):
        yield proxy.url, stats


def post(connection: http.client.HTTPConnection, path: str, body: object, **headers: str) -> Any:
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    answer = response.read()
    assert response.status == 200, answer
    return json.loads(answer)


def send_traffic(proxy: str) -> list[tuple[str, list[str]]]:
    """Every row through the sidecar; returns each request's id and its rows' truth."""
    x1, x2, truth = draw(np.random.default_rng(2), ROWS)
    connection = http.client.HTTPConnection(proxy.removeprefix("http://"), timeout=30)
    sent = []
    for start in range(0, ROWS, BATCH):
        part = slice(start, start + BATCH)
        inputs = [
            {"name": name, "shape": [BATCH], "datatype": "FP64", "data": column[part].tolist()}
            for name, column in (("x1", x1), ("x2", x2))
        ]
        request_id = f"iris-{start}"
        post(
            connection, "/v2/models/iris/infer", {"inputs": inputs}, **{"x-request-id": request_id}
        )
        sent.append((request_id, truth[part]))
    connection.close()
    return sent


def estimated(samples: Samples) -> bool:
    return value(samples, "mlmon_estimated_performance_samples", model="iris") >= ROWS


def test_live_multiclass_probabilities_are_estimated_and_label_delay_exported(
    stack: tuple[str, str],
) -> None:
    proxy, stats = stack
    sent = send_traffic(proxy)
    time.sleep(LABEL_WAIT_S)
    connection = http.client.HTTPConnection(proxy.removeprefix("http://"), timeout=30)
    for request_id, truth in sent[: LABELLED // BATCH]:
        assert post(connection, "/feedback", {"request_id": request_id, "labels": truth}) == {
            "accepted": BATCH
        }
    connection.close()

    samples = wait_for(
        stats,
        lambda s: (
            estimated(s) and value(s, "mlmon_label_coverage_ratio", model="iris") == LABELLED / ROWS
        ),
        timeout=60,
    )
    assert estimated(samples)
    window = {"model": "iris", "window": "1h"}
    estimate = value(samples, "mlmon_estimated_performance", metric="accuracy", **window)
    realised = value(samples, "mlmon_model_performance", metric="accuracy", **window)
    assert 0.0 < estimate < 1.0
    # Labels drawn from the model's own probabilities: the estimate matches what the
    # labelled half realised, within the sampling error of 300 rows.
    assert estimate == pytest.approx(realised, abs=0.1)
    median = value(samples, "mlmon_label_delay_seconds", quantile="0.5", **window)
    assert LABEL_WAIT_S <= median < 60

    with urllib.request.urlopen(f"{stats}/api/v1/report?model=iris", timeout=10) as response:
        (result,) = json.load(response)["results"]
    performance = result["estimated_performance"]
    assert performance["method"] == "cbpe" and performance["reason"] == ""
    assert performance["task"] == "multiclass"
    assert all(math.isfinite(m["value"]) for m in performance["metrics"])
    delay = result["label_delay"]
    assert delay["count"] == LABELLED
    assert LABEL_WAIT_S <= delay["p50"] <= delay["p90"] <= delay["p99"] <= delay["max"] < 60

    with urllib.request.urlopen(stats, timeout=10) as response:
        page = response.read().decode()
    assert "label delay p50" in page

    with urllib.request.urlopen(f"{stats}/metrics", timeout=10) as response:
        exposition = response.read()
    assert_promtool_accepts(exposition, lint_clean=False)
