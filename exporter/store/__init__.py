"""The input log: `open_store(settings)` picks the backend from the store URL."""

from __future__ import annotations

from exporter.settings import Settings
from exporter.store.base import InputLog


def open_store(settings: Settings) -> InputLog:
    """SQLite for sqlite:///..., Elasticsearch for http(s)://... (imported only when used)."""
    retention_s = settings.retention_days * 86400.0
    if settings.store.startswith("sqlite:"):
        from exporter.store.sqlite import SqliteLog

        return SqliteLog.from_url(settings.store, retention_s=retention_s)
    from exporter.store.elasticsearch import ElasticsearchLog
    from exporter.store.elasticsearch_config import ElasticsearchConfig

    es = settings.elasticsearch
    return ElasticsearchLog(
        ElasticsearchConfig(
            url=settings.store,
            index_prefix=es.index_prefix,
            username=es.username,
            password=es.password,
            api_key=es.api_key,
            ca_certs=es.ca_certs,
            verify_certs=es.verify_certs,
            request_timeout_s=es.request_timeout_s,
            retention_days=max(1, round(settings.retention_days)),
        )
    )
