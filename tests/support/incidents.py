"""Rare events on purpose, sent through the demo stack's sidecar until stopped.

The dashboards have panels for what regular traffic never produces: payload parse errors,
data-quality issues, non-finite predictions, upstream errors. `Incidents` sends, every
`interval_s`, one request of each kind in INCIDENTS to the sidecar in front of the demo
model server (`examples.model_server`, whose `x-mlmon-demo-fault` header makes it fail on
request), so that those panels show the events while it runs. One row per request:
the input log and the stats service's windows barely notice them.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from examples.credit_data import CATEGORICAL, FEATURES, INTEGER, MODEL_NAME
from examples.http_client import HttpClient, failure_kind
from examples.model_server import BROKEN_HTTP, FAULT_HEADER, NON_FINITE

_ROW: dict[str, Any] = {
    "age": 41,
    "income": 52.0,
    "debt_ratio": 0.3,
    "credit_history_years": 12.0,
    "late_payments": 0,
    "employment": "salaried",
}
_PATH = f"/v2/models/{MODEL_NAME}/infer"


def _v2_body(row: Mapping[str, Any]) -> bytes:
    def datatype(name: str) -> str:
        if name == CATEGORICAL:
            return "BYTES"
        return "INT64" if name in INTEGER else "FP64"

    inputs = [
        {"name": name, "shape": [1], "datatype": datatype(name), "data": [row[name]]}
        for name in FEATURES
    ]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


@dataclass(frozen=True)
class Incident:
    headers: Mapping[str, str]
    body: bytes
    status: int  # what the sidecar answers


INCIDENTS: dict[str, Incident] = {
    # The v2 envelope with `inputs` not a list: the model server answers 400, the
    # sidecar counts mlmon_payload_parse_errors_total{part="request", reason="invalid_shape"}.
    "parse_error": Incident({}, b'{"inputs": "not a list"}', 400),
    # A null income: answered (the model imputes the median), counted as
    # mlmon_feature_issues_total{feature="income", kind="missing"}.
    "missing_value": Incident({}, _v2_body({**_ROW, "income": None}), 200),
    # NaN probabilities: mlmon_non_finite_predictions_total, and a response
    # `non_finite_number` parse error.
    "non_finite": Incident({FAULT_HEADER: NON_FINITE}, _v2_body(_ROW), 200),
    # An answer that is not HTTP: 502, mlmon_upstream_errors_total{reason="protocol_error"}.
    "upstream_error": Incident({FAULT_HEADER: BROKEN_HTTP}, _v2_body(_ROW), 502),
}


@dataclass
class Sent:
    """What came back, per incident: status codes, or the failure kind of the call."""

    answers: dict[str, Counter[str]] = field(default_factory=dict)

    def unexpected(self) -> dict[str, dict[str, int]]:
        """Incidents answered otherwise than INCIDENTS says (empty: all as expected)."""
        return {
            name: dict(counts)
            for name, counts in self.answers.items()
            if set(counts) != {str(INCIDENTS[name].status)}
        }


class Incidents:
    """A thread sending every incident once per `interval_s`, from `start()` (or entering
    the `with` block) until `stop()`; `sent` counts the answers."""

    def __init__(self, url: str, *, interval_s: float = 0.5, timeout_s: float = 5.0) -> None:
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.sent = Sent({name: Counter() for name in INCIDENTS})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="incidents", daemon=True)

    def __enter__(self) -> Incidents:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Incidents:
        self._thread.start()
        return self

    def stop(self) -> Sent:
        self._stop.set()
        if self._thread.ident is not None:
            # Each call is bounded by timeout_s; a round has len(INCIDENTS) of them.
            self._thread.join(self.timeout_s * (len(INCIDENTS) + 1))
        return self.sent

    def _run(self) -> None:
        client = HttpClient(self.url, self.timeout_s)
        n = 0
        try:
            while not self._stop.is_set():
                for name, incident in INCIDENTS.items():
                    headers = {
                        "content-type": "application/json",
                        "x-request-id": f"incident-{name}-{n}",
                        **incident.headers,
                    }
                    try:
                        answer = str(client.request("POST", _PATH, incident.body, headers))
                    except (OSError, http.client.HTTPException) as exc:
                        answer = failure_kind(exc)
                    self.sent.answers[name][answer] += 1
                n += 1
                self._stop.wait(self.interval_s)
        finally:
            client.close()
