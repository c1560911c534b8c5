"""`create_app(settings)`: the sidecar: its proxy, and an ASGI app for the rest.

The server protocol (`exporter.serving.protocol`) hands proxied requests straight to
`Proxy.handle`; the ASGI app serves the control endpoints (`serving.control`: a Flask
app through a2wsgi) and the lifespan that starts and stops the proxy and the analysis
process.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from a2wsgi import WSGIMiddleware
from prometheus_client import CollectorRegistry

from exporter.analysis.schemas import SchemaSet
from exporter.metrics import Metrics, make_metrics
from exporter.serving.capture import CaptureChannel
from exporter.serving.control import control_app
from exporter.serving.proxy import Proxy
from exporter.serving.releases import Releases, build_releases
from exporter.settings import Settings
from exporter.store import check_store, probe_store
from exporter.tally import LabelCap

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Sidecar:
    """The ASGI entry point (control endpoints, lifespan) and the proxy."""

    settings: Settings
    registry: CollectorRegistry
    metrics: Metrics
    channel: CaptureChannel
    proxy: Proxy
    releases: Releases
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
                await self.releases.start()
                # Start-up objects (modules, app) live as long as the process: keep
                # them out of the collector's full passes, which otherwise pause
                # requests for milliseconds.
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.releases.stop()
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
    # A store that refuses writes is the operator's to fix: said at start-up and by
    # /readyz, yet the sidecar serves (its records wait in the spool).
    refusal = probe_store(settings)
    if refusal is not None:
        print(f"mlmon-exporter: error: the input log refuses writes; records will be "
              f"spooled until it accepts them: {refusal}", file=sys.stderr, flush=True)  # fmt: skip
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    versions: dict[str, str] = {}
    channel = CaptureChannel(settings, metrics, versions)
    model_label = LabelCap(settings.max_label_values, settings.models)
    releases = build_releases(settings, metrics, model_label)
    proxy = Proxy(
        settings,
        metrics,
        channel,
        versions,
        targets=releases.targets,
        router=releases.router,
        naive=releases.naive,
        model_label=model_label,
    )
    return Sidecar(
        settings=settings,
        registry=registry,
        metrics=metrics,
        channel=channel,
        proxy=proxy,
        releases=releases,
        control=WSGIMiddleware(control_app(settings, channel, proxy, schemas, refusal), workers=4),  # type: ignore[arg-type]
    )


def app_from_environment() -> Sidecar:
    """Factory for server processes started by uvicorn (several workers)."""
    from exporter import settings as settings_module

    return create_app(settings_module.load(os.environ.get("MLMON_CONFIG_FILE")))
