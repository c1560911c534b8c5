"""The input log's settings, shared by the sidecar and the stats service (both read it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from exporter.config import positive, setting


def store_url(value: Any) -> str | None:
    if value.startswith("sqlite:///") or urlsplit(value).scheme in ("http", "https"):
        return None
    return "sqlite:///path/to/file.db or an http(s):// Elasticsearch URL"


@dataclass(frozen=True)
class ElasticsearchSettings:
    index_prefix: str = setting("mlmon-inputs")
    username: str = setting("")
    password: str = setting("")
    api_key: str = setting("")
    ca_certs: str = setting("", help="CA bundle for TLS to the cluster")
    verify_certs: bool = setting(True)
    request_timeout_s: float = setting(5.0, check=positive)
    flavor: Literal["auto", "elasticsearch", "opensearch"] = setting(
        "auto", help="auto asks the cluster (GET /) on its first request"
    )
