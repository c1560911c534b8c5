"""The admin API: the route state, switching a model by hand, and the Alertmanager webhook.

    GET  /routes                              the state of every model switched, and the routes
    POST /routes/{model}  {"route": "fallback" | "primary"}
    POST /alertmanager    an Alertmanager webhook (payload version 4)

Every call needs `Authorization: Bearer <token>`; without it, or with another token, the
answer is 401 and nothing changes. A body that cannot be read is a 400. Each call is
counted by endpoint and status (`mlmon_admin_requests_total`).

An alert switches a model (its `model` label) to the fallback when its name is one of
`fallback.on_alerts`; the model goes back once every such alert holding it has resolved,
when `fallback.switch_back_on_resolved` says so and the alerts were what moved it (a model
moved by hand or by the circuit breaker stays where it was put).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from exporter.metrics import Metrics
from exporter.release_settings import FallbackSettings
from exporter.serving.routes import RouteState
from exporter.serving.targets import FALLBACK, PRIMARY
from exporter.tally import LabelCap


@dataclass(frozen=True)
class AdminAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.body).encode()


class BadRequestError(Exception):
    pass


class Admin:
    def __init__(
        self,
        token: str,
        state: RouteState,
        fallback: FallbackSettings,
        metrics: Metrics,
        model_label: LabelCap,
        routes: dict[str, Any],
    ) -> None:
        self._expected = f"Bearer {token}".encode()
        self._state = state
        self._fallback = fallback
        self._metrics = metrics
        self._label = model_label
        self._routes = routes  # what GET /routes says is configured

    def handle(self, method: str, path: str, authorization: bytes, body: bytes) -> AdminAnswer:
        endpoint = "routes" if path.startswith("/routes") else path.strip("/") or "other"
        if endpoint not in ("routes", "alertmanager"):
            endpoint = "other"
        answer = self._answer(endpoint, method, path, authorization, body)
        self._metrics.admin_requests.labels(endpoint, str(answer.status)).inc()
        return answer

    def _answer(
        self, endpoint: str, method: str, path: str, authorization: bytes, body: bytes
    ) -> AdminAnswer:
        if not hmac.compare_digest(authorization, self._expected):
            return AdminAnswer(401, {"error": "missing or wrong bearer token"})
        if endpoint == "other":
            return AdminAnswer(404, {"error": f"no such endpoint: {path}"})
        self._state.refresh()
        try:
            if endpoint == "alertmanager":
                if method != "POST":
                    return AdminAnswer(405, {"error": "POST an Alertmanager webhook payload"})
                return self._alerts(_json(body))
            if path == "/routes" and method == "GET":
                return AdminAnswer(200, {**self._state.snapshot(), "routes": self._routes})
            model = path.removeprefix("/routes/")
            if method != "POST" or not model or "/" in model:
                return AdminAnswer(405, {"error": "GET /routes, or POST /routes/{model}"})
            return self._switch(self._label(model), _json(body))
        except BadRequestError as exc:
            return AdminAnswer(400, {"error": str(exc)})

    def _switch(self, model: str, document: Any) -> AdminAnswer:
        route = document.get("route") if isinstance(document, dict) else None
        if route not in (PRIMARY, FALLBACK):
            raise BadRequestError('expected a JSON object {"route": "fallback" | "primary"}')
        if route == FALLBACK and not self._fallback.configured:
            return AdminAnswer(409, {"error": "no fallback configured (--fallback URL)"})
        switch = self._state.switch(model, route, "admin")
        return AdminAnswer(200, {"model": model, "route": route, "switched": switch is not None})

    def _alerts(self, document: Any) -> AdminAnswer:
        alerts = document.get("alerts") if isinstance(document, dict) else None
        if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
            raise BadRequestError("expected an Alertmanager webhook payload with a list of alerts")
        actions: list[dict[str, Any]] = []
        if not self._fallback.configured:
            return AdminAnswer(200, {"actions": actions, "note": "no fallback configured"})
        for alert in alerts:
            labels = alert.get("labels")
            status = alert.get("status")
            if not isinstance(labels, dict) or status not in ("firing", "resolved"):
                raise BadRequestError("expected every alert to have labels and a status")
            name, model = labels.get("alertname"), labels.get("model")
            if name not in self._fallback.on_alerts or not isinstance(model, str) or not model:
                continue
            action = self._alert(self._label(model), _fingerprint(alert, labels), status)
            actions.append({"alert": name, "model": model, "status": status, "action": action})
        return AdminAnswer(200, {"actions": actions})

    def _alert(self, model: str, fingerprint: str, status: str) -> str:
        held = self._state.on_fallback(model)
        holding = set(held.alerts) if held is not None else set()
        if status == "firing":
            if held is None:
                self._state.switch(model, FALLBACK, "alert", alerts=(fingerprint,))
                return "switched to fallback"
            self._state.switch(
                model, FALLBACK, "alert", alerts=tuple(sorted(holding | {fingerprint}))
            )
            return "already on fallback"
        if held is None:
            return "already on primary"
        remaining = tuple(sorted(holding - {fingerprint}))
        if not remaining and held.reason == "alert" and self._fallback.switch_back_on_resolved:
            self._state.switch(model, PRIMARY, "alert_resolved")
            return "switched back to primary"
        self._state.switch(model, FALLBACK, held.reason, alerts=remaining)
        return "kept on fallback"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"expected a JSON body: {exc}") from None


def _fingerprint(alert: dict[str, Any], labels: dict[str, Any]) -> str:
    fingerprint = alert.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    return json.dumps(labels, sort_keys=True)
