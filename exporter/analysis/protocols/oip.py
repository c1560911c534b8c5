"""Open Inference Protocol (KServe v2, Triton, MLServer) over REST.

Request: `{"inputs": [{"name", "shape", "datatype", "data", "parameters"?}]}`.
Each input is a tensor whose first dimension is the batch, so row i maps every
input name to that input's i-th slice (a scalar for shape [N], a nested list
otherwise). With `parameters.content_type == "pd"` (on the request or on an
input; MLServer's pandas codec) each input is a dataframe column and a [N, 1]
column gives scalars.

Triton's binary tensor extension (`inference-header-content-length: N`): the
first N bytes are the JSON header, the rest raw tensor bytes. Only the header is
read and every tensor is reported as a `TensorInfo` (name, shape, datatype): no
rows or predictions, the binary data is never decoded.

Response: `{"model_name", "model_version", "outputs": [...]}`. One output gives
the predictions row by row; with several, the names decide (see `outputs`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from exporter.analysis.protocols.outputs import from_columns
from exporter.analysis.protocols.sampling import sample_indices
from exporter.analysis.protocols.tensors import batch_rows, dims

_BINARY_HEADER = "inference-header-content-length"


def parse_request(exchange: Exchange, config: AdapterConfig) -> RequestPart:
    body, binary = _json_header(exchange.request_body, exchange.request_headers, "request")
    inputs = _tensor_list(body, "inputs", "request")
    if binary:
        return RequestPart(tensors=[_tensor_info(t, "request") for t in inputs])
    columnar = _is_pandas(body)
    by_name: dict[str, list[Any]] = {}
    for tensor in inputs:
        name, shape = _name_and_shape(tensor, "request")
        by_name[name] = batch_rows(
            tensor.get("data"), shape, "request", squeeze=columnar or _is_pandas(tensor)
        )
    batch_sizes = {len(rows) for rows in by_name.values()}
    if len(batch_sizes) > 1:
        raise PayloadError("request", "invalid_shape", "inputs disagree on the batch size")
    batch = batch_sizes.pop() if batch_sizes else 0
    items = list(by_name.items())
    rows = [{name: values[i] for name, values in items} for i in sample_indices(batch)]
    return RequestPart(rows=rows)


def parse_response(exchange: Exchange, config: AdapterConfig) -> ResponsePart:
    body, binary = _json_header(exchange.response_body, exchange.response_headers, "response")
    outputs = _tensor_list(body, "outputs", "response")
    model, version = _text(body.get("model_name")), _text(body.get("model_version"))
    if binary:
        tensors = [_tensor_info(t, "response") for t in outputs]
        return ResponsePart(tensors=tensors, model=model, model_version=version)
    columns: dict[str, list[Any]] = {}
    for tensor in outputs:
        name, shape = _name_and_shape(tensor, "response")
        columns[name] = batch_rows(tensor.get("data"), shape, "response")
    predictions = from_columns(columns, config, "response")
    return ResponsePart(predictions=predictions, model=model, model_version=version)


def _json_header(
    body: bytes, headers: Mapping[str, str], part: Part
) -> tuple[dict[str, Any], bool]:
    header_length = headers.get(_BINARY_HEADER)
    binary = header_length is not None
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 < length <= len(body):
            raise PayloadError(part, "invalid_shape", f"bad {_BINARY_HEADER}: {header_length!r}")
        body = body[:length]
    parsed = load_json(body, part)
    if not isinstance(parsed, dict):
        raise PayloadError(part, "invalid_shape", "body is not a JSON object")
    return parsed, binary


def _tensor_list(body: dict[str, Any], key: str, part: Part) -> list[dict[str, Any]]:
    tensors = body.get(key)
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise PayloadError(part, "invalid_shape", f"{key!r} must be a list of objects")
    return tensors


def _name_and_shape(tensor: dict[str, Any], part: Part) -> tuple[str, tuple[int, ...]]:
    name = tensor.get("name")
    if not isinstance(name, str):
        raise PayloadError(part, "invalid_shape", "tensor without a name")
    return name, dims(tensor.get("shape"), part, f"shape of {name!r}")


def _tensor_info(tensor: dict[str, Any], part: Part) -> TensorInfo:
    name, shape = _name_and_shape(tensor, part)
    return TensorInfo(name=name, shape=shape, datatype=str(tensor.get("datatype", "")))


def _is_pandas(holder: dict[str, Any]) -> bool:
    parameters = holder.get("parameters")
    return isinstance(parameters, dict) and parameters.get("content_type") == "pd"


def _text(value: Any) -> str | None:
    # Servers differ on whether a version is "1" or 1.
    return None if value is None or isinstance(value, dict | list) else str(value)


_SEGMENT = r"[^/]+"
PROTOCOL = Protocol(
    name="v2",
    inference=re.compile(
        rf"/v2/models/(?P<model>{_SEGMENT})(?:/versions/(?P<version>{_SEGMENT}))?/infer"
    ),
    control=re.compile(
        r"""/v2(?:/health/(?:live|ready))?
        | /v2/models/[^/]+(?:/versions/[^/]+)?(?:/ready|/config|/stats|/explain)?
        | /v2/(?:repository|logging|trace|systemsharedmemory|cudasharedmemory)(?:/.*)?
        """,
        re.VERBOSE,
    ),
    parse_request=parse_request,
    parse_response=parse_response,
)
