"""Each protocol through a live sidecar in front of a real model server speaking it."""

from __future__ import annotations

import functools
import http.client
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.model_servers import ModelServer
from tests.support.processes import sidecar
from tests.support.scrape import analysed, value, wait_for

ROWS = [[1.0, 2.0], [-5.0, -6.0], [0.5, 0.1]]  # row sums 3, -11, 0.6
SUMS = [sum(r) for r in ROWS]
FLAT = [x for row in ROWS for x in row]
P = [1 / (1 + math.exp(-s)) for s in SUMS]  # the servers' positive-class probability
CONFIDENCE = [max(p, 1 - p) for p in P]


@dataclass(frozen=True)
class Case:
    protocol: str
    path: str
    body: bytes
    content_type: str = "application/json"
    config: str = ""


CASES = [
    Case(
        "v2",
        "/v2/models/iris/versions/4/infer",
        json.dumps(
            {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32", "data": FLAT}]}
        ).encode(),
    ),
    Case(
        "v2",
        "/v2/models/iris/infer",
        json.dumps(
            {
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": "a", "shape": [3], "datatype": "FP32", "data": [r[0] for r in ROWS]},
                    {"name": "b", "shape": [3], "datatype": "FP32", "data": [r[1] for r in ROWS]},
                ],
            }
        ).encode(),
    ),
    Case("v1", "/v1/models/iris:predict", json.dumps({"instances": ROWS}).encode()),
    Case(
        "v1",
        "/v1/models/iris/versions/4:predict",
        json.dumps({"inputs": {"a": [r[0] for r in ROWS], "b": [r[1] for r in ROWS]}}).encode(),
    ),
    Case(
        "mlflow",
        "/invocations",
        json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": ROWS}}).encode(),
        config="model: iris\n",
    ),
    Case(
        "mlflow",
        "/invocations",
        json.dumps({"dataframe_records": [{"a": r[0], "b": r[1]} for r in ROWS]}).encode(),
        config="model: iris\n",
    ),
    Case(
        "mlflow", "/invocations", json.dumps({"instances": ROWS}).encode(), config="model: iris\n"
    ),
    Case(
        "mlflow",
        "/invocations",
        json.dumps({"inputs": {"a": [r[0] for r in ROWS], "b": [r[1] for r in ROWS]}}).encode(),
        config="model: iris\n",
    ),
    Case(
        "mlflow",
        "/invocations",
        b"a,b\n" + b"".join(f"{r[0]},{r[1]}\n".encode() for r in ROWS),
        "text/csv",
        "model: iris\n",
    ),
    Case(
        "seldon",
        "/api/v1.0/predictions",
        json.dumps({"data": {"names": ["a", "b"], "ndarray": ROWS}}).encode(),
        config="model: iris\n",
    ),
    Case(
        "seldon",
        "/api/v1.0/predictions",
        json.dumps({"data": {"tensor": {"shape": [3, 2], "values": FLAT}}}).encode(),
        config="model: iris\n",
    ),
    Case(
        "generic",
        "/score",
        json.dumps({"records": [{"a": r[0], "b": r[1]} for r in ROWS]}).encode(),
        config=(
            "model: iris\nprotocol: generic\n"
            "generic:\n  rows: $.records\n  predictions: $.results\n"
            "  model: $.model.name\n  version: $.model.version\n"
        ),
    ),
]


def call(url: str, case: Case) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    connection.request("POST", case.path, case.body, {"content-type": case.content_type})
    response = connection.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.protocol}{c.path}-{c.content_type}")
def test_rows_and_predictions_of_each_protocol(case: Case, tmp_path: Path) -> None:
    with (
        ModelServer(case.protocol, model="iris", version="4") as server,
        sidecar(server.url, tmp_path, config=case.config) as running,
    ):
        direct = call(server.url, case)
        through = call(running.url, case)
        assert through == direct
        assert through[0] == 200
        assert server.requests[-1].body == case.body

        samples = wait_for(running.url, lambda s: analysed(s, "mlmon_batch_size_count", 1))
        v = functools.partial(value, samples)
        assert v("mlmon_batch_size_sum", model="iris") == 3
        assert v("mlmon_requests_total", model="iris", protocol=case.protocol, code="200") == 1
        assert v("mlmon_payload_parse_errors_total") == 0
        if case.protocol == "mlflow":  # a regression server: the row sum
            assert v("mlmon_prediction_value_sum", model="iris") == pytest.approx(sum(SUMS))
            assert v("mlmon_prediction_value_count", model="iris") == 3
        else:  # two-class probabilities; the generic server reports P(positive) as "score"
            expected = sum(P) if case.protocol == "generic" else sum(CONFIDENCE)
            assert v("mlmon_prediction_confidence_sum", model="iris") == pytest.approx(
                expected, rel=1e-4
            )
            assert v("mlmon_predictions_total", model="iris") == (
                3 if case.protocol != "generic" else 0
            )
        if case.protocol in ("v2", "generic"):  # the version is in the response body
            assert v("mlmon_model_info", model="iris", model_version="4") == 1


def test_class_names_from_settings_label_the_predictions(tmp_path: Path) -> None:
    case = CASES[2]  # v1 instances: two-class probabilities per row
    config = "prediction:\n  classes: [negative, positive]\n"
    with (
        ModelServer("v1", model="iris") as server,
        sidecar(server.url, tmp_path, config=config) as running,
    ):
        call(running.url, case)
        samples = wait_for(running.url, lambda s: analysed(s, "mlmon_predictions_total", 3))
        assert value(samples, "mlmon_predictions_total", **{"class": "positive"}) == 2
        assert value(samples, "mlmon_predictions_total", **{"class": "negative"}) == 1


def test_triton_binary_tensors_are_forwarded_and_only_shapes_are_read(tmp_path: Path) -> None:
    data = struct.pack("<6f", *FLAT)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    ).encode()
    body = header + data
    with ModelServer("v2", model="iris") as server, sidecar(server.url, tmp_path) as running:
        connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
        connection.request(
            "POST",
            "/v2/models/iris/infer",
            body,
            {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(header)),
            },
        )
        response = connection.getresponse()
        assert response.status == 200
        labels = json.loads(response.read())["outputs"][0]["data"]
        assert labels == [1, 0, 1]
        assert server.requests[-1].body == body
        samples = wait_for(running.url, lambda s: analysed(s, "mlmon_batch_size_count", 1))
        assert value(samples, "mlmon_batch_size_sum", model="iris") == 3
        assert value(samples, "mlmon_payload_parse_errors_total") == 0
