"""The stats service's HTTP endpoints (Flask, served by uvicorn through a2wsgi).

/ (what moved: histograms and scores of the latest evaluation, `page`), /metrics (the
collector's gauges), /healthz, /readyz (a first evaluation has finished),
/api/v1/report (latest results as JSON, `?model=` and `?window=` filter) and
/api/v1/baseline (each model's baseline; samples only with `?samples=1`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, exposition

from stats_service.baseline.files import baseline_to_dict
from stats_service.offline.report import evaluation_to_dict
from stats_service.service.collector import StatsCollector
from stats_service.service.page import render_page
from stats_service.service.runner import ModelContext, Runner


def create_app(runner: Runner, contexts: Mapping[str, ModelContext]) -> Flask:
    app = Flask("mlmon-stats")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(runner, contexts))

    @app.get("/")
    def page() -> Response:
        return Response(render_page(runner.latest), content_type="text/html; charset=utf-8")

    @app.get("/metrics")
    def metrics() -> Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(registry), content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        if runner.latest is None:
            return _json(503, {"status": "waiting for the first evaluation"})
        return _json(200, {"status": "ready"})

    @app.get("/api/v1/report")
    def report() -> Response:
        document = evaluation_to_dict(runner.latest)
        wanted = {key: request.args[key] for key in ("model", "window") if key in request.args}
        document["results"] = [
            result
            for result in document["results"]
            if all(result[key] == value for key, value in wanted.items())
        ]
        return _json(200, document)

    @app.get("/api/v1/baseline")
    def baseline() -> Response:
        with_samples = request.args.get("samples", "") in ("1", "true", "yes")
        models = {
            model: {
                "path": context.baseline_path,
                **_without_samples(baseline_to_dict(context.baseline), with_samples),
            }
            for model, context in contexts.items()
            if request.args.get("model", model) == model
        }
        return _json(200, {"models": models})

    return app


def _without_samples(document: dict[str, Any], keep: bool) -> dict[str, Any]:
    if keep:
        return document
    for feature in [*document["features"], document["prediction"], document["label"]]:
        if feature is not None:
            feature.pop("sample", None)
    document.pop("row_sample", None)
    return document


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(
        json.dumps(payload, allow_nan=False), status=status, content_type="application/json"
    )
