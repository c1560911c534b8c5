"""The sidecar's own endpoints, beside the proxied traffic: /metrics, /healthz, /readyz,
/schema and /feedback (a Flask app, served on the same port through a2wsgi threads).
"""

from __future__ import annotations

import hmac
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, exposition, multiprocess

from exporter.analysis.records import store_columns
from exporter.analysis.schemas import SchemaSet
from exporter.schema import schema_to_yaml
from exporter.serving.capture import CaptureChannel
from exporter.serving.feedback import FeedbackError, parse_feedback
from exporter.serving.proxy import Proxy
from exporter.settings import Settings
from exporter.store import open_store
from exporter.store.base import InputLog, StoreUnavailable

FEEDBACK_MAX_BYTES = 16 * 1024 * 1024
_COLLECT_ATTEMPTS = 5


def control_app(
    settings: Settings,
    channel: CaptureChannel,
    proxy: Proxy,
    schemas: SchemaSet,
    store_refusal: str | None = None,
) -> Flask:
    endpoints = _Endpoints(settings, channel, proxy, schemas, store_refusal)
    app = Flask("mlmon-exporter")
    app.add_url_rule("/schema", view_func=endpoints.schema, methods=["GET"])
    app.add_url_rule("/metrics", view_func=endpoints.metrics, methods=["GET"])
    app.add_url_rule("/feedback", view_func=endpoints.feedback, methods=["POST"])
    app.add_url_rule("/healthz", view_func=endpoints.healthz, methods=["GET"])
    app.add_url_rule("/readyz", view_func=endpoints.readyz, methods=["GET"])
    return app


class _Endpoints:
    def __init__(
        self,
        settings: Settings,
        channel: CaptureChannel,
        proxy: Proxy,
        schemas: SchemaSet,
        store_refusal: str | None,
    ) -> None:
        self._settings = settings
        # Readiness is the model server's: a refusing store must not take the sidecar out
        # of a load balancer (inference would stop for a monitoring fault), so /readyz
        # names it in its body instead.
        self._input_log = "ok" if store_refusal is None else f"refuses writes: {store_refusal}"
        self._channel = channel
        self._proxy = proxy
        self._schemas = schemas
        self._stores = threading.local()  # a store connection per control thread (SQLite)

    def schema(self) -> Response:
        """The feature schema in use for ?model=, or the one inferred from traffic."""
        model = request.args.get("model", "")
        configured = self._schemas.for_model(model) if model else self._schemas.default
        if configured is not None:
            return Response(schema_to_yaml(configured), content_type="application/yaml")
        inferred = self._channel.inferred_schemas
        text = inferred.get(model) if model else next(iter(inferred.values()), None)
        if text is None:
            known = ", ".join(sorted(inferred)) or "none yet"
            return _json(404, {"error": f"no schema for model {model!r}", "inferred_models": known})
        return Response(text, content_type="application/yaml")

    def metrics(self) -> Response:
        self._channel.refresh_gauges()
        self._proxy.flush_metrics_from_thread()
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return Response(_collect(encoder), content_type=content_type)

    def feedback(self) -> Response:
        """Ground truth for logged rows, upserted by id: before or after the record."""
        token = self._settings.feedback_token
        if token and not hmac.compare_digest(
            request.headers.get("Authorization", ""), f"Bearer {token}"
        ):
            return _error(401, "missing or wrong bearer token")
        if (request.content_length or 0) > FEEDBACK_MAX_BYTES:
            return _error(413, f"body larger than {FEEDBACK_MAX_BYTES} bytes")
        try:
            labels = parse_feedback(request.get_data())
        except FeedbackError as exc:
            return _error(400, str(exc))
        try:
            if getattr(self._stores, "log", None) is None:
                self._stores.log = _feedback_store(self._settings, self._schemas)
            self._stores.log.add_ground_truth(labels)
        except StoreUnavailable as exc:
            response = _error(503, f"input log unavailable, retry later: {exc}")
            response.headers["Retry-After"] = "5"
            return response
        return _json(200, {"accepted": len(labels)})

    def healthz(self) -> Response:
        return _json(200, {"status": "ok"})

    def readyz(self) -> Response:
        s = self._settings
        try:
            address = (s.upstream_host, s.upstream_port)
            socket.create_connection(address, timeout=s.connect_timeout_s).close()
        except OSError as exc:
            failure = {"status": "upstream unreachable", "upstream": s.upstream, "error": str(exc)}
            return _json(503, {**failure, "input_log": self._input_log})
        return _json(200, {"status": "ready", "upstream": s.upstream, "input_log": self._input_log})


def _collect(encoder: Callable[[CollectorRegistry], bytes]) -> bytes:
    """All processes' metrics. A process creating its metrics file leaves it empty for an
    instant, and reading it then fails: read again (prometheus_client multiprocess mode)."""
    for _ in range(_COLLECT_ATTEMPTS - 1):
        try:
            return encoder(_all_processes())
        except struct.error:
            time.sleep(0.01)
    return encoder(_all_processes())


def _all_processes() -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def _feedback_store(settings: Settings, schemas: SchemaSet) -> InputLog:
    """The store for ground truth, with every model of a schema prepared, so a label
    can be kept even before the model's first record (Elasticsearch needs its index)."""
    log = open_store(settings)
    for model in schemas.by_model:
        columns = store_columns(schemas, model)
        if columns is not None:
            log.prepare(columns)
    return log


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")
