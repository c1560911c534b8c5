"""The input log: `open_store(settings)` picks the backend from the store URL."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from exporter.errors import SettingsError
from exporter.settings import Settings
from exporter.store.base import InputLog

if TYPE_CHECKING:
    from exporter.store.elasticsearch_config import ElasticsearchConfig


def open_store(settings: Settings) -> InputLog:
    """SQLite for sqlite:///..., Elasticsearch for http(s)://... (imported only when used)."""
    if settings.store.startswith("sqlite:"):
        from exporter.store.sqlite import SqliteLog

        return SqliteLog.from_url(settings.store, retention_s=settings.retention_days * 86400.0)
    from exporter.store.elasticsearch import ElasticsearchLog

    return ElasticsearchLog(_elasticsearch_config(settings))


def check_store(settings: Settings) -> None:
    """Stop start-up on store settings the backend would refuse later, in the analysis."""
    if settings.store.startswith("sqlite:"):
        return
    try:
        _elasticsearch_config(settings)
    except ValueError as exc:
        raise SettingsError(f"key 'elasticsearch': {exc}") from None


def _elasticsearch_config(settings: Settings) -> ElasticsearchConfig:
    from exporter.store.elasticsearch_config import ElasticsearchConfig

    return ElasticsearchConfig(
        url=settings.store,
        retention_days=max(1, round(settings.retention_days)),
        **dataclasses.asdict(settings.elasticsearch),
    )
