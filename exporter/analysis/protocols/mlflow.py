"""MLflow scoring server (`POST /invocations`).

JSON request: exactly one of `dataframe_split` (`columns` + `data` rows; without
`columns` the names are "0", "1", ...), `dataframe_records` (a list of row
dicts), `instances` or `inputs` (the TF-Serving formats, see `tfserving`).
Other keys such as `params` are ignored.

CSV request (`text/csv` or `application/csv`): the first line is the header.
Cells that read as numbers become ints or floats, empty cells None, the rest
stay strings. A missing content type is read as JSON; any other type is
unsupported.

Response: `{"predictions": ...}` (MLflow 2) or a bare list (MLflow 1). A list
gives one prediction per row; a row dict (a DataFrame output) or a dict of
columns is read as named outputs: a probability/label name if one matches,
else the first column (see `outputs`).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    PayloadError,
    Protocol,
    RequestPart,
    ResponsePart,
)
from exporter.analysis.protocols.json_body import load_envelope, load_json
from exporter.analysis.protocols.outputs import from_value
from exporter.analysis.protocols.tfserving import mask_b64, rows_from_inputs, rows_from_instances
from exporter.features.compute import coerce_csv_cell

_JSON_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_CSV_TYPES = frozenset({"text/csv", "application/csv"})


def parse_request(exchange: Exchange, config: AdapterConfig) -> RequestPart:
    content_type = exchange.request_headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _CSV_TYPES:
        return RequestPart(rows=_csv_rows(exchange.request_body))
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise PayloadError("request", "unsupported_content_type", media_type[:100])
    key, body = load_envelope(exchange.request_body, "request", _JSON_KEYS)
    value = body[key]
    if key == "dataframe_split":
        rows = _split_rows(value)
    elif key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise PayloadError("request", "invalid_shape", "'dataframe_records' must be objects")
        rows = value
    elif key == "instances":
        rows = rows_from_instances(value, "request")
    else:
        rows = rows_from_inputs(value, "request")
    return RequestPart(rows=mask_b64(rows, exchange.request_body))


def parse_response(exchange: Exchange, config: AdapterConfig) -> ResponsePart:
    body = load_json(exchange.response_body, "response")
    if isinstance(body, dict) and "predictions" in body:
        body = body["predictions"]
    elif not isinstance(body, list):
        raise PayloadError("response", "invalid_shape", "no 'predictions'")
    return ResponsePart(predictions=from_value(body, config, "response"))


def _split_rows(split: Any) -> list[dict[str, Any]]:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise PayloadError("request", "invalid_shape", "'dataframe_split' needs a 'data' list")
    data: list[Any] = split["data"]
    if not all(isinstance(row, list) for row in data):
        raise PayloadError("request", "invalid_shape", "'dataframe_split' rows must be lists")
    columns = split.get("columns")
    if columns is None:
        columns = [str(i) for i in range(len(data[0]) if data else 0)]
    elif not isinstance(columns, list):
        raise PayloadError("request", "invalid_shape", "'columns' must be a list")
    names = [str(c) for c in columns]
    if any(len(row) != len(names) for row in data):
        raise PayloadError("request", "invalid_shape", "row length differs from 'columns'")
    return [dict(zip(names, row, strict=True)) for row in data]


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    try:
        records = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), strict=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PayloadError("request", "invalid_csv", str(exc)[:200]) from exc
    if not records or not records[0]:
        raise PayloadError("request", "invalid_csv", "no header line")
    header = records[0]
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if not record:  # a blank line, as a trailing newline pair leaves
            continue
        if len(record) != len(header):
            raise PayloadError(
                "request", "invalid_csv", f"line {number}: {len(record)} cells, {len(header)} names"
            )
        # The baseline reads training CSV through the same coercion: no skew.
        rows.append(
            {name: coerce_csv_cell(cell) for name, cell in zip(header, record, strict=True)}
        )
    return rows


PROTOCOL = Protocol(
    name="mlflow",
    inference=re.compile(r"/invocations"),
    control=None,
    parse_request=parse_request,
    parse_response=parse_response,
)
