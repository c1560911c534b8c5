"""Seldon Core v1 prediction API (`SeldonMessage` over REST).

Request, one of:
- `data`: `names` plus `ndarray` (a list of rows) or `tensor` (`shape` and flat
  row-major `values`). Row i maps `names[j]` to column j; without names the
  columns are "0", "1", ... A scalar row is a row of one column.
  `tftensor` is reported as a `TensorInfo` only.
- `jsonData`: one row, the object itself (a non-object becomes `{"jsonData": v}`).
- `strData`: one row `{"strData": text}`.
- `binData`: no rows, a `TensorInfo("binData", (size,), "BYTES")`; not decoded.
`meta` is ignored.

Response: the same envelope. In `data`, several `names` are class names:
a row of probabilities gets label = the name of the largest, score = its value.
`jsonData` is read as named outputs (see `outputs`); `strData` is free text,
not a prediction, and gives none.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    Part,
    PayloadError,
    Protocol,
    RequestPart,
    ResponsePart,
    TensorInfo,
)
from exporter.analysis.protocols.json_body import load_json
from exporter.analysis.protocols.outputs import from_rows, from_value
from exporter.analysis.protocols.tensors import b64_size, batch_rows, dims


def parse_request(exchange: Exchange, config: AdapterConfig) -> RequestPart:
    body = _envelope(exchange.request_body, "request")
    if "data" in body:
        names, values, tensors = _data(body["data"], "request")
        return RequestPart(rows=_rows(values, names), tensors=tensors)
    if "jsonData" in body:
        value = body["jsonData"]
        return RequestPart(rows=[value if isinstance(value, dict) else {"jsonData": value}])
    if "strData" in body:
        return RequestPart(rows=[{"strData": body["strData"]}])
    return RequestPart(tensors=[_bin_data(body, "request")])


def parse_response(exchange: Exchange, config: AdapterConfig) -> ResponsePart:
    body = _envelope(exchange.response_body, "response")
    if "data" in body:
        names, values, tensors = _data(body["data"], "response")
        if len(names) > 1:
            config = _with_class_names(config, tuple(names))
        return ResponsePart(predictions=from_rows(values, config, "response"), tensors=tensors)
    if "jsonData" in body:
        return ResponsePart(predictions=from_value(body["jsonData"], config, "response"))
    if "strData" in body:
        return ResponsePart()
    return ResponsePart(tensors=[_bin_data(body, "response")])


def _envelope(raw: bytes, part: Part) -> dict[str, Any]:
    body = load_json(raw, part)
    if not isinstance(body, dict) or not body.keys() & {"data", "jsonData", "strData", "binData"}:
        raise PayloadError(part, "invalid_shape", "no data, jsonData, strData or binData")
    return body


def _data(data: Any, part: Part) -> tuple[list[str], list[Any], list[TensorInfo]]:
    """Column names, one value per row, and tensors reported by shape only."""
    if not isinstance(data, dict):
        raise PayloadError(part, "invalid_shape", "'data' must be an object")
    names = data.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PayloadError(part, "invalid_shape", "'names' must be a list of strings")
    if isinstance(data.get("ndarray"), list):
        return names, data["ndarray"], []
    tensor = data.get("tensor")
    if isinstance(tensor, dict):
        shape = dims(tensor.get("shape"), part)
        return names, batch_rows(tensor.get("values"), shape, part), []
    tftensor = data.get("tftensor")
    if isinstance(tftensor, dict):
        return names, [], [_tf_tensor_info(tftensor, part)]
    raise PayloadError(part, "invalid_shape", "'data' needs ndarray, tensor or tftensor")


def _rows(values: list[Any], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for value in values:
        cells = value if isinstance(value, list) else [value]
        columns: list[str] | tuple[str, ...] = names or _default_names(len(cells))
        if len(columns) != len(cells):
            raise PayloadError("request", "invalid_shape", "row length differs from 'names'")
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def _bin_data(body: dict[str, Any], part: Part) -> TensorInfo:
    encoded = body.get("binData")
    if not isinstance(encoded, str):
        raise PayloadError(part, "invalid_shape", "'binData' must be a base64 string")
    return TensorInfo(name="binData", shape=(b64_size(encoded),), datatype="BYTES")


def _tf_tensor_info(tftensor: dict[str, Any], part: Part) -> TensorInfo:
    # TensorProto as JSON: {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "2"}]}}.
    try:
        dim = (tftensor.get("tensorShape") or {}).get("dim") or []
        shape = tuple(int(d.get("size", 0)) for d in dim)
    except (AttributeError, TypeError, ValueError) as exc:
        raise PayloadError(part, "invalid_shape", "bad tftensor shape") from exc
    return TensorInfo(name="tftensor", shape=shape, datatype=str(tftensor.get("dtype", "")))


@lru_cache(maxsize=256)
def _default_names(width: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(width))


@lru_cache(maxsize=256)
def _with_class_names(config: AdapterConfig, names: tuple[str, ...]) -> AdapterConfig:
    return replace(config, class_names=names)


PROTOCOL = Protocol(
    name="seldon",
    inference=re.compile(r"(?:/seldon/[^/]+/[^/]+)?/(?:api/v[01]\.[01]/predictions|predict)"),
    control=re.compile(r"(?:/seldon/[^/]+/[^/]+)?/api/v[01]\.[01]/(?:feedback|metadata(?:/.*)?)"),
    parse_request=parse_request,
    parse_response=parse_response,
)
