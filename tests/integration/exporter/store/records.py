"""Records and index inspection shared by the Elasticsearch tests."""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import Elasticsearch

from exporter.records import LogRecord, PredictionValue, StoreColumns

NOW = time.time()
IRIS = StoreColumns(model="iris", numeric=("sepal_length", "petal_width"), categorical=("color",))


def record(i: int, *, model: str = "iris", ts: float = NOW, **features: Any) -> LogRecord:
    return LogRecord(
        id=f"req-{i}:0",
        timestamp=ts,
        request_id=f"req-{i}",
        row=0,
        model=model,
        model_version="7",
        protocol="v2",
        status=200,
        latency_ms=1.5,
        features=features or {"sepal_length": 5.0 + i % 7, "petal_width": None, "color": "red"},
        issues=("missing:petal_width",),
        prediction=PredictionValue(value=0.7, label="setosa", score=0.9),
    )


def source(client: Elasticsearch, index: str, doc_id: str) -> dict[str, Any]:
    return dict(client.get(index=index, id=doc_id).body["_source"])


def count(client: Elasticsearch, index: str) -> int:
    client.indices.refresh(index=index)  # tests only: the backend never refreshes
    return int(client.count(index=index).body["count"])


def field_types(client: Elasticsearch, index: str) -> dict[str, str]:
    """Flattened `path -> type` of an index's mapping, sub-fields included."""
    mapping = client.indices.get_mapping(index=index).body[index]["mappings"]
    types: dict[str, str] = {}

    def walk(properties: dict[str, Any], path: str) -> None:
        for name, spec in properties.items():
            here = f"{path}{name}"
            if "type" in spec and spec["type"] != "object":
                types[here] = spec["type"]
            for sub, sub_spec in spec.get("fields", {}).items():
                types[f"{here}.{sub}"] = sub_spec["type"]
            walk(spec.get("properties", {}), f"{here}.")

    walk(mapping["properties"], "")
    return types
