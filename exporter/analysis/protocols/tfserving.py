"""TensorFlow Serving REST API, also KServe v1 (`:predict`, `:classify`, `:regress`).

Request, exactly one of:
- `instances` (row format): a dict instance is a row of named inputs; any other
  instance (scalar, list, or a lone `{"b64": ...}`) becomes `{"instance": value}`.
- `inputs` (columnar): a dict maps each input name to a list with one entry per
  row; non-list values are shared by every row. A list gives `{"inputs": item}`
  per row, a scalar one row `{"inputs": value}`.
- `examples` (classify/regress): each example is a row, `context` merged in.
`signature_name` is ignored.

Binary values `{"b64": "<base64>"}` are never decoded: they can be megabytes of
image. Each becomes the marker `{"b64_bytes": <decoded size>}`.

Response: `predictions` (one output per row, or a dict of named outputs per
row), `outputs` (dict of named columns, or a list per row), or `result` from
classify (`[[label, score], ...]` per row: the best pair) and regress (numbers).
MLflow reuses `rows_from_instances` and `rows_from_inputs`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    Part,
    PayloadError,
    Prediction,
    Protocol,
    RequestPart,
    ResponsePart,
    class_probabilities,
    predictions_from_outputs,
)
from exporter.analysis.protocols.json_body import load_envelope, load_json
from exporter.analysis.protocols.outputs import from_value
from exporter.analysis.protocols.tensors import b64_size

_REQUEST_KEYS = ("instances", "inputs", "examples")


def parse_request(exchange: Exchange, config: AdapterConfig) -> RequestPart:
    key, body = load_envelope(exchange.request_body, "request", _REQUEST_KEYS)
    if key == "instances":
        rows = rows_from_instances(body[key], "request")
    elif key == "inputs":
        rows = rows_from_inputs(body[key], "request")
    else:
        rows = _rows_from_examples(body[key], body.get("context", {}))
    return RequestPart(rows=mask_b64(rows, exchange.request_body))


def parse_response(exchange: Exchange, config: AdapterConfig) -> ResponsePart:
    body = load_json(exchange.response_body, "response")
    if isinstance(body, dict):
        if "predictions" in body:
            return ResponsePart(predictions=from_value(body["predictions"], config, "response"))
        if "outputs" in body:
            return ResponsePart(predictions=from_value(body["outputs"], config, "response"))
        if isinstance(body.get("result"), list):
            return ResponsePart(predictions=_from_result(body["result"], config))
    raise PayloadError("response", "invalid_shape", "no predictions, outputs or result")


def rows_from_instances(instances: Any, part: Part) -> list[dict[str, Any]]:
    if not isinstance(instances, list):
        raise PayloadError(part, "invalid_shape", "'instances' must be a list")
    return [
        value if isinstance(value, dict) and not _is_b64(value) else {"instance": value}
        for value in instances
    ]


def rows_from_inputs(inputs: Any, part: Part) -> list[dict[str, Any]]:
    if isinstance(inputs, list):
        return [{"inputs": value} for value in inputs]
    if not isinstance(inputs, dict) or _is_b64(inputs):
        return [{"inputs": inputs}]
    sizes = {len(v) for v in inputs.values() if isinstance(v, list)}
    if len(sizes) > 1:
        raise PayloadError(part, "invalid_shape", "'inputs' columns differ in length")
    batch = sizes.pop() if sizes else (1 if inputs else 0)
    items = list(inputs.items())
    return [{k: v[i] if isinstance(v, list) else v for k, v in items} for i in range(batch)]


def mask_b64(rows: list[dict[str, Any]], body: bytes) -> list[dict[str, Any]]:
    """Replace every `{"b64": ...}` value in `rows` by its size marker."""
    # Searching the raw bytes first keeps the common numeric payload free of a walk.
    if b'"b64"' not in body:
        return rows
    return [{name: _masked(value) for name, value in row.items()} for row in rows]


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        if _is_b64(value):
            return {"b64_bytes": b64_size(value["b64"])}
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _is_b64(value: dict[str, Any]) -> bool:
    return len(value) == 1 and isinstance(value.get("b64"), str)


def _rows_from_examples(examples: Any, context: Any) -> list[dict[str, Any]]:
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise PayloadError("request", "invalid_shape", "'examples' must be a list of objects")
    if not isinstance(context, dict):
        raise PayloadError("request", "invalid_shape", "'context' must be an object")
    return [{**context, **example} for example in examples] if context else examples


def _from_result(result: list[Any], config: AdapterConfig) -> list[Prediction]:
    if all(not isinstance(r, list) for r in result):  # regress: one number per example
        return predictions_from_outputs(result, config)
    return [_best_pair(r) if isinstance(r, list) else Prediction() for r in result]


def _best_pair(pairs: list[Any]) -> Prediction:
    # classify: [[label, score], ...] for one example.
    scored = [
        (str(p[0]), float(p[1]))
        for p in pairs
        if isinstance(p, list) and len(p) == 2 and isinstance(p[1], int | float)
    ]
    if not scored:
        return Prediction()
    if not all(math.isfinite(score) for _, score in scored):
        return Prediction(value=math.nan)
    label, score = max(scored, key=lambda pair: pair[1])
    names, scores = zip(*scored, strict=True)
    return Prediction(label=label, score=score, probabilities=class_probabilities(names, scores))


# A version label (`/labels/stable`) is reported as the version.
_SEGMENT = r"[^/:]+"
PROTOCOL = Protocol(
    name="v1",
    inference=re.compile(
        rf"/v1/models/(?P<model>{_SEGMENT})"
        rf"(?:/(?:versions|labels)/(?P<version>{_SEGMENT}))?:(?:predict|classify|regress)"
    ),
    control=re.compile(
        r"/v1/models(?:/[^/:]+(?:/(?:versions|labels)/[^/:]+)?(?:/metadata|:explain)?)?"
    ),
    parse_request=parse_request,
    parse_response=parse_response,
)
