"""What each test model server answers: one function per protocol.

Every model computes the same thing: per input row, s = the sum of its numeric
values (nested lists and dicts included, strings ignored) and p = sigmoid(s).
Classifier-shaped protocols answer the probabilities [1 - p, p]; MLflow answers
the regression value s. A NaN or infinite input gives a non-finite output,
which Python's json writes as a NaN/Infinity token as real servers do.

An app returns (status, JSON payload) and raises on a body it cannot read; the
server turns that into a 400.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

Reply = tuple[int, Any]
NOT_FOUND: Reply = (404, {"error": "not found"})


@dataclass(frozen=True)
class AppRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes


App = Callable[[AppRequest, str, str], Reply]


def row_sum(value: Any) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return sum((row_sum(v) for v in value), 0.0)
    if isinstance(value, dict):
        return sum((row_sum(v) for v in value.values()), 0.0)
    raise ValueError(f"unexpected JSON value {value!r}")


def sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(x / 2.0))  # no overflow for large |x|


def _probabilities(rows: list[Any]) -> list[list[float]]:
    return [[1.0 - p, p] for p in (sigmoid(row_sum(r)) for r in rows)]


def _columns_to_rows(columns: Any) -> list[Any]:
    if isinstance(columns, list):
        return columns
    if not isinstance(columns, dict):
        raise ValueError("inputs must be a list or an object")
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


_V2_MODEL = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/infer|/ready)?")
_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


def v2_app(request: AppRequest, model: str, version: str) -> Reply:
    if request.method == "GET" and request.path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        return 200, {"name": "mlmon-test-v2", "version": "2", "extensions": ["binary_tensor_data"]}
    match = _V2_MODEL.fullmatch(request.path)
    if match is None or unquote(match[1]) != model:
        return NOT_FOUND
    if request.method == "GET" and match[3] is None:
        return 200, {"name": model, "versions": [version], "platform": "mlmon-test"}
    if request.method == "GET" and match[3] == "/ready":
        return 200, {}
    if request.method != "POST" or match[3] != "/infer":
        return NOT_FOUND
    body, binary = request.body, b""
    header_length = request.headers.get("inference-header-content-length")
    if header_length is not None:
        body, binary = body[: int(header_length)], body[int(header_length) :]
    document = json.loads(body)
    inputs = document["inputs"]
    sums = np.zeros(int(inputs[0]["shape"][0]))
    offset = 0
    for tensor in inputs:
        shape, datatype = tensor["shape"], tensor["datatype"]
        if "data" not in tensor:  # Triton binary extension: bytes after the JSON header
            size = int(tensor["parameters"]["binary_data_size"])
            raw, offset = binary[offset : offset + size], offset + size
            if datatype == "BYTES":
                continue
            values = np.frombuffer(raw, dtype=_DTYPES[datatype]).astype(np.float64)
        elif datatype == "BYTES":
            continue
        else:
            values = np.asarray(tensor["data"], dtype=np.float64)
        if values.size != math.prod(shape):
            raise ValueError(f"input {tensor['name']!r} does not match shape {shape}")
        sums = sums + values.reshape(shape[0], -1).sum(axis=1)
    p = 0.5 * (1.0 + np.tanh(sums / 2.0))
    reply = {
        "model_name": model,
        "model_version": version,
        "outputs": [
            {"name": "label", "shape": [len(p)], "datatype": "INT64",
             "data": (p >= 0.5).astype(int).tolist()},
            {"name": "probabilities", "shape": [len(p), 2], "datatype": "FP64",
             "data": np.column_stack([1.0 - p, p]).ravel().tolist()},
        ],
    }  # fmt: skip
    if "id" in document:
        reply["id"] = document["id"]
    return 200, reply


_V1_MODEL = re.compile(r"/v1/models/([^/:]+)(?:/versions/([^/:]+))?(:predict|/metadata)?")


def v1_app(request: AppRequest, model: str, version: str) -> Reply:
    match = _V1_MODEL.fullmatch(request.path)
    if match is None or unquote(match[1]) != model:
        return NOT_FOUND
    if request.method == "GET" and match[3] is None:
        status = {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK"}}
        return 200, {"model_version_status": [status]}
    if request.method == "GET" and match[3] == "/metadata":
        return 200, {"model_spec": {"name": model, "version": version}, "metadata": {}}
    if request.method != "POST" or match[3] != ":predict":
        return NOT_FOUND
    document = json.loads(request.body)
    if "instances" in document:
        rows = document["instances"]
    else:
        rows = _columns_to_rows(document["inputs"])
    return 200, {"predictions": _probabilities(rows)}


def mlflow_app(request: AppRequest, model: str, version: str) -> Reply:
    if request.method == "GET" and request.path in ("/ping", "/health"):
        return 200, {}
    if request.method == "GET" and request.path == "/version":
        return 200, "2.14.0"
    if request.method != "POST" or request.path != "/invocations":
        return NOT_FOUND
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("text/csv", "application/csv"):
        reader = csv.DictReader(io.StringIO(request.body.decode("utf-8")), strict=True)
        rows: list[Any] = [{k: _csv_number(v) for k, v in r.items()} for r in reader]
    elif media_type in ("", "application/json"):
        document = json.loads(request.body)
        keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs")
                if k in document]  # fmt: skip
        if len(keys) != 1:
            raise ValueError("expected exactly one of dataframe_split, dataframe_records, ...")
        value = document[keys[0]]
        rows = value["data"] if keys[0] == "dataframe_split" else _columns_to_rows(value)
    else:
        return 415, {"error_code": "BAD_REQUEST", "message": f"unsupported {media_type}"}
    return 200, {"predictions": [row_sum(r) for r in rows]}


def _csv_number(cell: str | None) -> float | str | None:
    try:
        return float(cell) if cell else None
    except ValueError:
        return cell


def seldon_app(request: AppRequest, model: str, version: str) -> Reply:
    if request.method == "GET" and request.path in ("/health/status", "/health/ping", "/ready"):
        return 200, {"status": "ok"}
    if request.method != "POST" or request.path not in ("/api/v1.0/predictions", "/predict"):
        return NOT_FOUND
    document = json.loads(request.body)
    if "jsonData" in document:
        rows = [document["jsonData"]]
    elif "ndarray" in document["data"]:
        rows = document["data"]["ndarray"]
    else:
        tensor = document["data"]["tensor"]
        rows = np.asarray(tensor["values"], dtype=np.float64).reshape(tensor["shape"]).tolist()
    return 200, {
        "data": {"names": ["t:0", "t:1"], "ndarray": _probabilities(rows)},
        "meta": {"requestPath": {model: f"mlmon/{model}:{version}"}},
    }


def generic_app(request: AppRequest, model: str, version: str) -> Reply:
    if request.method == "GET" and request.path == "/healthz":
        return 200, {"status": "ok"}
    if request.method != "POST" or request.path != "/score":
        return NOT_FOUND
    records = json.loads(request.body)["records"]
    scores = [{"score": sigmoid(row_sum(r))} for r in records]
    return 200, {"model": {"name": model, "version": version}, "results": scores}


APPS: dict[str, App] = {
    "v2": v2_app,
    "v1": v1_app,
    "mlflow": mlflow_app,
    "seldon": seldon_app,
    "generic": generic_app,
}
