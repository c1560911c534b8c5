"""An Open Inference Protocol (KServe v2) REST server for one classifier, as a raw ASGI app.

Endpoints: GET /v2/health/live, /v2/health/ready, /v2 (server metadata),
/v2/models/{m}[/versions/{v}] (model metadata), /v2/models/{m}[/versions/{v}]/ready, and
POST /v2/models/{m}[/versions/{v}]/infer. Errors are `{"error": "..."}` (400, 404, 405, 413).

Infer request: one input per feature, each a column of shape [N] or [N, 1] (the pandas
codec, `parameters.content_type: "pd"`), data flat or nested; null is a missing value.
Response: `label` (BYTES [N], the predicted class) and `probabilities` (FP64 [N, 2], in
the order of `parameters.classes`; column 1 is the positive class), plus `model_name`,
`model_version` and the request's `id`. Two named outputs is what the sidecar's v2
adapter reads as label + per-class scores (`exporter.analysis.protocols.outputs`): it logs the
label, the positive-class probability as the value and the label's probability as the
score. A lone positive-class probability next to a label would be read as the label's
confidence, wrong for every row predicted negative.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Columns = dict[str, list[Any]]
Predict = Callable[[Columns], npt.NDArray[np.float64]]

MAX_BODY_BYTES = 16 << 20
MAX_ROWS = 10_000
_MODEL_PATH = re.compile(
    r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/infer|/ready)?"
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    inputs: tuple[tuple[str, str], ...]  # (name, v2 datatype): FP64, INT64 or BYTES
    classes: tuple[str, str]
    predict: Predict  # columns -> (N, 2) class probabilities


class InferError(ValueError):
    """A request this model cannot answer; the message says which input and why."""


class OipApp:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is expected
            return
        method, path = scope["method"], scope["path"].rstrip("/")
        if path in ("/v2/health/live", "/v2/health/ready", "/v2"):
            if method != "GET":
                await _reply(send, 405, {"error": f"{method} not allowed on {path}"})
            elif path == "/v2":
                await _reply(send, 200, {"name": "mlmon-demo", "version": "1", "extensions": []})
            else:
                await _reply(send, 200, {path.rsplit("/", 1)[1]: True})
            return
        match = _MODEL_PATH.fullmatch(path)
        if match is None or match["name"] != self.spec.name:
            await _reply(send, 404, {"error": f"no such model or endpoint: {path}"})
            return
        if match["version"] not in (None, self.spec.version):
            await _reply(send, 404, {"error": f"model {self.spec.name} has no version "
                                              f"{match['version']}"})  # fmt: skip
            return
        action = match["action"]
        expected = "POST" if action == "/infer" else "GET"
        if method != expected:
            await _reply(send, 405, {"error": f"{method} not allowed; use {expected}"})
            return
        if action == "/ready":
            await _reply(send, 200, {"name": self.spec.name, "ready": True})
        elif action is None:
            await _reply(send, 200, self.metadata())
        else:
            await self._infer(receive, send)

    def metadata(self) -> dict[str, Any]:
        shape = [-1]
        return {
            "name": self.spec.name,
            "versions": [self.spec.version],
            "platform": "sklearn",
            "inputs": [{"name": n, "datatype": t, "shape": shape} for n, t in self.spec.inputs],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": shape},
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
            ],
            "parameters": {"classes": list(self.spec.classes)},
        }

    async def _infer(self, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            await _reply(send, 413, {"error": f"body above {MAX_BODY_BYTES} bytes"})
            return
        try:
            request_id, columns = decode_request(body, self.spec)
        except InferError as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        probabilities = self.spec.predict(columns)
        await _reply(send, 200, encode_response(self.spec, probabilities, request_id))


def decode_request(body: bytes, spec: ModelSpec) -> tuple[str | None, Columns]:
    """The request id and one list of raw values per input (see the module docstring)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InferError(f"body is not JSON: {str(exc)[:100]}") from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise InferError("expected {'inputs': [{name, shape, datatype, data}, ...]}")
    request_id = document.get("id")
    expected = dict(spec.inputs)
    columns: Columns = {}
    for tensor in inputs:
        name = tensor.get("name")
        if name not in expected:
            raise InferError(f"unexpected input {name!r}; expected {', '.join(expected)}")
        if name in columns:
            raise InferError(f"input {name!r} given twice")
        columns[name] = _column(tensor, name, expected[name])
    missing = [name for name in expected if name not in columns]
    if missing:
        raise InferError(f"missing input(s) {', '.join(missing)}")
    if len({len(values) for values in columns.values()}) > 1:
        raise InferError("inputs differ in their number of rows")
    return (request_id if isinstance(request_id, str) else None), columns


def _column(tensor: Mapping[str, Any], name: str, datatype: str) -> list[Any]:
    shape = tensor.get("shape")
    if not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 2
        and all(type(d) is int and d >= 0 for d in shape)
        and (len(shape) == 1 or shape[1] == 1)
    ):
        raise InferError(f"input {name!r}: shape must be [N] or [N, 1]; got {shape!r}")
    if shape[0] > MAX_ROWS:
        raise InferError(f"input {name!r}: at most {MAX_ROWS} rows")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InferError(f"input {name!r}: data must be a list")
    values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if len(values) != shape[0]:
        raise InferError(f"input {name!r}: {len(values)} values for shape {shape}")
    check = _is_text if datatype == "BYTES" else _is_number
    for row, value in enumerate(values):
        if value is not None and not check(value):
            kind = "a string" if datatype == "BYTES" else "a finite number"
            raise InferError(f"input {name!r} row {row}: expected {kind} or null; got {value!r}")
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def encode_response(
    spec: ModelSpec, probabilities: npt.NDArray[np.float64], request_id: str | None
) -> dict[str, Any]:
    rows = len(probabilities)
    # The schema's rule (threshold 0.5 on the positive class), so a tie is positive as
    # the sidecar and the stats service would count it.
    negative, positive = spec.classes
    labels = [positive if p >= 0.5 else negative for p in probabilities[:, 1].tolist()]
    response: dict[str, Any] = {
        "model_name": spec.name,
        "model_version": spec.version,
        "outputs": [
            {"name": "label", "shape": [rows], "datatype": "BYTES", "data": labels},
            {
                "name": "probabilities",
                "shape": [rows, 2],
                "datatype": "FP64",
                "data": probabilities.ravel().tolist(),
                "parameters": {"classes": list(spec.classes)},
            },
        ],
    }
    if request_id is not None:
        response["id"] = request_id
    return response


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _reply(send: Send, status: int, document: Mapping[str, Any]) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
