"""Helpers for the release-route tests: a second, different v2 model, the admin API, and
requests to the sidecar that return what the client got."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.model_apps import row_sum, sigmoid
from tests.support.raw_upstream import RawRequest, RawUpstream

TOKEN = "admin-secret-token"
V2_PATH = "/v2/models/iris/infer"


def token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def v2_body(rows: list[list[float]]) -> bytes:
    flat = [value for row in rows for value in row]
    width = len(rows[0]) if rows else 0
    tensor = {"name": "x", "shape": [len(rows), width], "datatype": "FP64", "data": flat}
    return json.dumps({"inputs": [tensor]}).encode()


def contrarian_v2(request: RawRequest, *, version: str = "2", status: int = 200) -> bytes:
    """A different model at the same path: it predicts the other class, p' = 1 - p."""
    tensor = json.loads(request.body)["inputs"][0]
    n, width = tensor["shape"]
    data = tensor["data"]
    p = [1.0 - sigmoid(row_sum(data[i * width : (i + 1) * width])) for i in range(n)]
    reply = {
        "model_name": "iris",
        "model_version": version,
        "outputs": [
            {"name": "label", "shape": [n], "datatype": "INT64",
             "data": [int(x >= 0.5) for x in p]},
            {"name": "probabilities", "shape": [n, 2], "datatype": "FP64",
             "data": [v for x in p for v in (1.0 - x, x)]},
        ],
    }  # fmt: skip
    body = json.dumps(reply).encode()
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


@contextmanager
def contrarian(version: str = "2") -> Iterator[RawUpstream]:
    with RawUpstream(lambda request: contrarian_v2(request, version=version)) as server:
        yield server


def failing(status: int = 500) -> RawUpstream:
    body = b'{"error": "scripted failure"}'
    answer = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    return RawUpstream(lambda _: answer)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    started = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return Answer(
        response.status,
        data,
        {k.lower(): v for k, v in response.getheaders()},
        time.perf_counter() - started,
    )


def infer(url: str, rows: list[list[float]], request_id: str, **headers: str) -> Answer:
    return call(url, "POST", V2_PATH, v2_body(rows), {"x-request-id": request_id, **headers})


def admin(
    url: str, method: str, path: str, document: Any = None, token: str | None = TOKEN
) -> Answer:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = document if isinstance(document, bytes) else None
    if document is not None and body is None:
        body = json.dumps(document).encode()
    return call(url, method, path, body, headers)


def alert_payload(status: str, alertname: str, model: str, fingerprint: str = "f1") -> Any:
    """An Alertmanager webhook payload (version 4) with one alert."""
    labels = {"alertname": alertname, "model": model, "severity": "critical"}
    return {
        "version": "4",
        "groupKey": "{}:{alertname}",
        "status": status,
        "receiver": "mlmon-fallback",
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {"status": status, "labels": labels, "annotations": {},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": fingerprint},
        ],
    }  # fmt: skip
