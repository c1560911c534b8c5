"""The input log: `open_store(settings)` picks the backend from the store URL."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from exporter.errors import SettingsError
from exporter.store.base import InputLog, StoreRefused, StoreUnavailable
from exporter.store.settings import ElasticsearchSettings

if TYPE_CHECKING:
    from exporter.store.elasticsearch.config import ElasticsearchConfig


class StoreOptions(Protocol):
    """What the store needs of a service's settings (the sidecar's `Settings` has it)."""

    @property
    def store(self) -> str: ...
    @property
    def retention_days(self) -> float: ...
    @property
    def elasticsearch(self) -> ElasticsearchSettings: ...


def open_store(settings: StoreOptions) -> InputLog:
    """SQLite for sqlite:///..., Elasticsearch for http(s)://... (imported only when used)."""
    if settings.store.startswith("sqlite:"):
        from exporter.store.sqlite.log import SqliteLog

        return SqliteLog.from_url(settings.store, retention_s=settings.retention_days * 86400.0)
    from exporter.store.elasticsearch.log import ElasticsearchLog

    return ElasticsearchLog(_elasticsearch_config(settings))


def probe_store(settings: StoreOptions) -> str | None:
    """At start-up, why the store refuses writes (wrong credentials or flavor), or None:
    it accepts them, or is not reachable yet (it may come up later; the spool waits)."""
    if settings.store.startswith("sqlite:"):
        return None
    from exporter.store.elasticsearch.log import ElasticsearchLog

    log = ElasticsearchLog(_elasticsearch_config(settings))
    try:
        log.probe()
    except StoreRefused as exc:
        return str(exc)
    except StoreUnavailable:
        return None
    finally:
        log.close()
    return None


def check_store(settings: StoreOptions) -> None:
    """Stop start-up on store settings the backend would refuse later, in the analysis."""
    if settings.store.startswith("sqlite:"):
        return
    try:
        _elasticsearch_config(settings)
    except ValueError as exc:
        raise SettingsError(f"key 'elasticsearch': {exc}") from None


def _elasticsearch_config(settings: StoreOptions) -> ElasticsearchConfig:
    from exporter.store.elasticsearch.config import ElasticsearchConfig

    return ElasticsearchConfig(
        url=settings.store,
        retention_days=max(1, round(settings.retention_days)),
        **dataclasses.asdict(settings.elasticsearch),
    )
