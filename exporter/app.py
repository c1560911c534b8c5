"""`create_app(settings)`: the sidecar as one ASGI application.

Control endpoints (`/metrics`, `/healthz`, `/readyz`) are a Flask app mounted
through a2wsgi on the same server; every other path is proxied by `Proxy`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from a2wsgi import WSGIMiddleware
from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, exposition, multiprocess

from exporter.metrics import Metrics, make_metrics
from exporter.proxy import Proxy, Receive, Scope, Send
from exporter.settings import Settings
from exporter.worker import CaptureQueue, Worker

CONTROL_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


@dataclass
class Sidecar:
    """The ASGI entry point and the parts tests may want to look at."""

    settings: Settings
    registry: CollectorRegistry
    metrics: Metrics
    queue: CaptureQueue
    worker: Worker
    proxy: Proxy
    control: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] in CONTROL_PATHS:
                await self.control(scope, receive, send)
            else:
                await self.proxy(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.proxy.start()
                self.worker.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.proxy.stop()
                self.worker.stop(self.settings.shutdown_timeout_s)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Sidecar:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = make_metrics(registry)
    versions: dict[str, str] = {}
    queue = CaptureQueue(settings.queue_max_items, settings.queue_max_bytes, metrics)
    return Sidecar(
        settings=settings, registry=registry, metrics=metrics, queue=queue,
        worker=Worker(settings, metrics, queue, versions),
        proxy=Proxy(settings, metrics, queue, versions),
        control=WSGIMiddleware(_control_app(settings, registry), workers=4),  # type: ignore[arg-type]
    )


def app_from_environment() -> Sidecar:
    """Factory for server processes started by uvicorn (several workers)."""
    from exporter import settings as settings_module

    return create_app(settings_module.load(os.environ.get("MLMON_CONFIG_FILE")))


def _control_app(settings: Settings, registry: CollectorRegistry) -> Flask:
    app = Flask("mlmon-exporter")

    @app.get("/metrics")
    def metrics() -> Response:
        source = registry
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(source), content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json_response('{"status":"ok"}', 200)

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            socket.create_connection(
                (settings.upstream_host, settings.upstream_port),
                timeout=settings.connect_timeout_s).close()
        except OSError as exc:
            return _json_response(
                f'{{"status":"upstream unreachable","upstream":"{settings.upstream}",'
                f'"error":{json.dumps(str(exc))}}}', 503)
        return _json_response(f'{{"status":"ready","upstream":"{settings.upstream}"}}', 200)

    return app


def _json_response(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="application/json")
