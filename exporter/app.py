"""`create_app(settings)`: the sidecar: its proxy, and an ASGI app for the rest.

The server protocol (`exporter.serving`) hands proxied requests straight to
`Proxy.handle`; the ASGI app serves the control endpoints (`/metrics`,
`/healthz`, `/readyz`, `/schema`, `/feedback`: a Flask app through a2wsgi) and
the lifespan that starts and stops the proxy and the analysis process.
"""

from __future__ import annotations

import gc
import hmac
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, exposition, multiprocess

from exporter.capture import CaptureChannel
from exporter.feedback import FeedbackError, parse_feedback
from exporter.metrics import Metrics, make_metrics
from exporter.proxy import Proxy
from exporter.records import store_columns
from exporter.schema_yaml import schema_to_yaml
from exporter.schemas import SchemaSet
from exporter.settings import Settings
from exporter.store import check_store, open_store
from exporter.store.base import InputLog, StoreUnavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
FEEDBACK_MAX_BYTES = 16 * 1024 * 1024
_COLLECT_ATTEMPTS = 5


@dataclass
class Sidecar:
    """The ASGI entry point (control endpoints, lifespan) and the proxy."""

    settings: Settings
    registry: CollectorRegistry
    metrics: Metrics
    channel: CaptureChannel
    proxy: Proxy
    control: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.control(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.proxy.start()
                await self.channel.start()
                # Start-up objects (modules, app) live as long as the process: keep
                # them out of the collector's full passes, which otherwise pause
                # requests for milliseconds.
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.proxy.stop()
                await self.channel.stop(self.settings.shutdown_timeout_s)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> Sidecar:
    """The sidecar. Its metrics are shared with the analysis process through
    prometheus_client's multiprocess mode, so PROMETHEUS_MULTIPROC_DIR must be set
    before prometheus_client is first imported (the CLI does it)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        raise RuntimeError(
            "set PROMETHEUS_MULTIPROC_DIR before importing exporter.app "
            "(use the mlmon-exporter command)"
        )
    schemas = SchemaSet.from_settings(settings)  # bad schema files stop start-up here
    check_store(settings)
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    versions: dict[str, str] = {}
    channel = CaptureChannel(settings, metrics, versions)
    proxy = Proxy(settings, metrics, channel, versions)
    return Sidecar(
        settings=settings,
        registry=registry,
        metrics=metrics,
        channel=channel,
        proxy=proxy,
        control=WSGIMiddleware(_control_app(settings, channel, proxy, schemas), workers=4),  # type: ignore[arg-type]
    )


def app_from_environment() -> Sidecar:
    """Factory for server processes started by uvicorn (several workers)."""
    from exporter import settings as settings_module

    return create_app(settings_module.load(os.environ.get("MLMON_CONFIG_FILE")))


def _control_app(
    settings: Settings, channel: CaptureChannel, proxy: Proxy, schemas: SchemaSet
) -> Flask:
    app = Flask("mlmon-exporter")

    @app.get("/schema")
    def schema() -> Response:
        """The feature schema in use for ?model=, or the one inferred from traffic."""
        model = request.args.get("model", "")
        configured = schemas.for_model(model) if model else schemas.default
        if configured is not None:
            return Response(schema_to_yaml(configured), content_type="application/yaml")
        inferred = channel.inferred_schemas
        text = inferred.get(model) if model else next(iter(inferred.values()), None)
        if text is None:
            known = ", ".join(sorted(inferred)) or "none yet"
            return _json(404, {"error": f"no schema for model {model!r}", "inferred_models": known})
        return Response(text, content_type="application/yaml")

    @app.get("/metrics")
    def metrics() -> Response:
        channel.refresh_gauges()
        proxy.flush_metrics_from_thread()
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return Response(_collect(encoder), content_type=content_type)

    stores = threading.local()  # one store connection per control thread (SQLite needs it)

    @app.post("/feedback")
    def feedback() -> Response:
        """Ground truth for logged rows, upserted by id: before or after the record."""
        if settings.feedback_token and not hmac.compare_digest(
            request.headers.get("Authorization", ""), f"Bearer {settings.feedback_token}"
        ):
            return _error(401, "missing or wrong bearer token")
        if (request.content_length or 0) > FEEDBACK_MAX_BYTES:
            return _error(413, f"body larger than {FEEDBACK_MAX_BYTES} bytes")
        try:
            labels = parse_feedback(request.get_data())
        except FeedbackError as exc:
            return _error(400, str(exc))
        try:
            if getattr(stores, "log", None) is None:
                stores.log = _feedback_store(settings, schemas)
            stores.log.add_ground_truth(labels)
        except StoreUnavailable as exc:
            response = _error(503, f"input log unavailable, retry later: {exc}")
            response.headers["Retry-After"] = "5"
            return response
        return _json(200, {"accepted": len(labels)})

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            socket.create_connection(
                (settings.upstream_host, settings.upstream_port), timeout=settings.connect_timeout_s
            ).close()
        except OSError as exc:
            return _json(
                503,
                {
                    "status": "upstream unreachable",
                    "upstream": settings.upstream,
                    "error": str(exc),
                },
            )
        return _json(200, {"status": "ready", "upstream": settings.upstream})

    return app


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
