"""The sidecar's settings: one frozen object, validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from exporter.analysis.protocols.generic import compile_selector
from exporter.config import REQUIRED, load_settings, non_negative, port_number, positive, setting
from exporter.errors import SettingsError
from exporter.release_settings import (
    AdminSettings,
    CanarySettings,
    FallbackSettings,
    ShadowSettings,
    http_url,
)
from exporter.store.settings import ElasticsearchSettings, store_url


def _selector(value: Any) -> str | None:
    if not value:
        return None
    try:
        compile_selector(value)
    except ValueError as exc:
        return f"a selector such as $.data[*] ({exc})"
    return None


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "an integer >= 1"


@dataclass(frozen=True)
class PredictionSettings:
    task: Literal["auto", "regression", "binary", "multiclass"] = setting("auto")
    classes: tuple[str, ...] = setting(())
    threshold: float = setting(0.5)


@dataclass(frozen=True)
class GenericSettings:
    """Selectors for the generic JSON adapter, e.g. rows: "$.data[*]"."""

    rows: str = setting("", check=_selector)
    predictions: str = setting("", check=_selector)
    model: str = setting("", check=_selector)
    version: str = setting("", check=_selector)


def _rate(value: Any) -> str | None:
    return None if 0.0 <= value <= 1.0 else "a number between 0 and 1"


@dataclass(frozen=True)
class Settings:
    upstream: str = setting(REQUIRED, check=http_url, help="URL of the model server")
    host: str = setting("127.0.0.1")
    port: int = setting(8000, check=port_number)
    workers: int = setting(1, check=_at_least_one, help="server processes (multiprocess metrics)")
    protocol: Literal["auto", "v2", "v1", "mlflow", "seldon", "generic"] = setting("auto")
    model: str = setting("", help="model name when neither path nor body names one")
    model_version: str = setting("")
    connect_timeout_s: float = setting(1.0, check=positive)
    read_timeout_s: float = setting(30.0, check=positive)
    pool_max_idle: int = setting(64, check=_at_least_one, help="idle upstream connections kept")
    preserve_host: bool = setting(False, help="forward the client's Host header unchanged")
    queue_max_items: int = setting(10_000, check=_at_least_one)
    queue_max_bytes: int = setting(64 * 1024 * 1024, check=_at_least_one)
    capture_max_bytes: int = setting(
        8 * 1024 * 1024,
        check=non_negative,
        help="bodies larger than this are forwarded but not parsed (counted as too_large)",
    )
    max_request_bytes: int = setting(
        256 * 1024 * 1024, check=_at_least_one, help="larger request bodies get 413"
    )
    max_rows_per_request: int = setting(
        1000,
        check=_at_least_one,
        help="rows of one request analysed and logged; the others are sampled out, counted",
    )
    models: tuple[str, ...] = setting((), help="allow-list of model label values")
    max_label_values: int = setting(
        50, check=_at_least_one, help="distinct model/version/class labels before __other__"
    )
    shutdown_timeout_s: float = setting(30.0, check=non_negative)
    schemas: tuple[str, ...] = setting(
        (), help="feature schema files (YAML); without one a schema is inferred from traffic"
    )
    hash_key_file: str = setting("", help="secret key for features with log: hash")
    store: str = setting(
        "sqlite:///./mlmon.db", check=store_url, help="the input log: SQLite file or Elasticsearch"
    )
    spool_dir: str = setting("./mlmon-spool", help="where records wait while the store is down")
    spool_max_bytes: int = setting(1 << 30, check=_at_least_one)
    retention_days: float = setting(30.0, check=positive, help="records older are deleted")
    log_sample_rate: float = setting(
        1.0, check=_rate, help="share of requests logged; errors and rows with issues always are"
    )
    record_max_bytes: int = setting(
        64 * 1024, check=_at_least_one, help="larger records keep only the size and hash"
    )
    feedback_token: str = setting("", help="bearer token required by POST /feedback")
    prediction: PredictionSettings = PredictionSettings()
    generic: GenericSettings = GenericSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    shadow: tuple[ShadowSettings, ...] = setting(
        (), help="candidates sent a copy of requests (--shadow URL, repeatable)"
    )
    # Frozen sections (RUF009 cannot see it across modules).
    canary: CanarySettings = CanarySettings()  # noqa: RUF009
    fallback: FallbackSettings = FallbackSettings()  # noqa: RUF009
    admin: AdminSettings = AdminSettings()  # noqa: RUF009

    def __post_init__(self) -> None:
        if self.protocol == "generic" and not (self.generic.rows or self.generic.predictions):
            raise SettingsError(
                "settings: key 'generic.rows' or 'generic.predictions': expected at least one "
                "selector when protocol is 'generic'"
            )
        self._check_routes()

    def _check_routes(self) -> None:
        for index, shadow in enumerate(self.shadow):
            if not shadow.url:
                raise SettingsError(f"settings: key 'shadow[{index}].url' is required")
        if self.canary.weight > 0 and not self.canary.url:
            raise SettingsError(
                "settings: key 'canary.url': expected an http:// URL when canary.weight > 0"
            )
        if self.fallback.url and self.fallback.baseline:
            raise SettingsError(
                "settings: key 'fallback.baseline': expected either fallback.url or "
                "fallback.baseline, not both"
            )
        if self.fallback.breaker.enabled and not self.fallback.configured:
            raise SettingsError(
                "settings: key 'fallback.breaker.enabled': expected a fallback "
                "(fallback.url or fallback.baseline) for the breaker to move traffic to"
            )
        names = [s.label for s in self.shadow]
        if self.canary.url:
            names.append(self.canary.label)
        if self.fallback.configured:
            names.append(self.fallback.label)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise SettingsError(
                f"settings: key 'shadow[].name': expected distinct route names, "
                f"{', '.join(repeated)} is used twice (set name: on one of them)"
            )

    @property
    def upstream_host(self) -> str:
        return urlsplit(self.upstream).hostname or ""

    @property
    def upstream_port(self) -> int:
        return urlsplit(self.upstream).port or 80

    @property
    def upstream_prefix(self) -> str:
        return urlsplit(self.upstream).path.rstrip("/")


def load(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    return load_settings(Settings, config_file=config_file, environ=environ, overrides=overrides)
