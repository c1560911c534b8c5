"""Elasticsearch connection settings, the client built from them, and index names.

Shared by the writer (`exporter.store.elasticsearch.log`) and the window reader
(`exporter.store.elasticsearch.read`), so both address a model's records alike.

Flavors. The official 8.x client sends every request with the compatibility media type
(`application/vnd.elasticsearch+json; compatible-with=8`), which OpenSearch refuses with
406. The client merges its own and per-request `headers=` first and only then turns
`application/json` into that media type, so a `headers=` option cannot undo it (tried,
elasticsearch 8.19). The supported extension point is the client's `transport_class`:
`FlavorTransport` sends plain `application/json` / `application/x-ndjson` to an
OpenSearch cluster, and nothing else changes (the same template, bulk and aggregation
requests). `flavor: auto` asks the cluster once, on its first request, with a plain
`GET /` both engines accept: `version.distribution == "opensearch"` is OpenSearch.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from elastic_transport import HttpHeaders, Transport, TransportApiResponse
from elasticsearch import Elasticsearch

FLAVORS = ("auto", "elasticsearch", "opensearch")
# application/vnd.elasticsearch+json; compatible-with=8 -> application/json (and x-ndjson)
_COMPAT_MIMETYPE = re.compile(
    r"application/vnd\.elasticsearch\+([a-z0-9.-]+)(\s*;\s*compatible-with=\d+)?"
)

# Index names may hold only these characters (lower case); anything else in a model name
# becomes "-". A valid name is at most 255 bytes: the model part is capped well below that.
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_MAX_MODEL_PART = 80
_HASH_CHARS = 8


@dataclass(frozen=True)
class ElasticsearchConfig:
    url: str  # http(s)://host:port, without credentials (see `config_from_url`)
    index_prefix: str = "mlmon-inputs"
    username: str = ""
    password: str = ""
    api_key: str = ""
    ca_certs: str = ""
    verify_certs: bool = True
    request_timeout_s: float = 5.0
    flavor: str = "auto"  # auto (ask the cluster), elasticsearch, opensearch
    retention_days: int = 30  # 0 or less: keep records forever
    shards: int = 1
    replicas: int = 0
    # Bulk requests: split by count and by size; the caller already batches by time.
    bulk_max_docs: int = 1000
    bulk_max_bytes: int = 5 * 1024 * 1024
    # Retries of one bulk request (429, 5xx, connection errors): this many attempts in
    # all, with jittered exponential backoff, all within `retry_budget_s` seconds.
    max_attempts: int = 3
    retry_budget_s: float = 10.0
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"elasticsearch url: expected http(s)://host:port, got {self.url!r}")
        prefix = self.index_prefix
        if not prefix or _UNSAFE.search(prefix) or prefix[0] in "-_+." or len(prefix) > 100:
            raise ValueError(
                f"elasticsearch index_prefix: expected lower-case letters, digits, '-', '_', "
                f"'.' (not first), at most 100 characters; got {prefix!r}"
            )
        if self.request_timeout_s <= 0 or self.retry_budget_s <= 0 or self.max_attempts < 1:
            raise ValueError(
                "elasticsearch: request_timeout_s and retry_budget_s must be > 0 and "
                "max_attempts >= 1"
            )
        if self.flavor not in FLAVORS:
            raise ValueError(
                f"elasticsearch flavor: expected one of {', '.join(FLAVORS)}; got {self.flavor!r}"
            )
        if self.bulk_max_docs < 1 or self.bulk_max_bytes < 1 or self.shards < 1:
            raise ValueError("elasticsearch: bulk_max_docs, bulk_max_bytes, shards must be >= 1")


def config_from_url(url: str, **options: Any) -> ElasticsearchConfig:
    """`http(s)://user:pass@host:port` -> a config with the credentials moved out of the URL
    (so they are never logged with it); `options` are the other config fields."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    bare = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    config = ElasticsearchConfig(url=bare, **options)
    if parts.username is not None:
        config = replace(
            config, username=unquote(parts.username), password=unquote(parts.password or "")
        )
    return config


def make_client(config: ElasticsearchConfig) -> Elasticsearch:
    """One client per backend. The client's own retries are off: the bulk sender retries
    with its own time budget, and readers fail fast so a stats cycle is not held up."""
    options: dict[str, Any] = {
        "request_timeout": config.request_timeout_s,
        "max_retries": 0,
        "retry_on_timeout": False,
    }
    if config.api_key:
        options["api_key"] = config.api_key
    elif config.username:
        options["basic_auth"] = (config.username, config.password)
    if config.url.startswith("https://"):
        options["verify_certs"] = config.verify_certs
        if config.ca_certs:
            options["ca_certs"] = config.ca_certs
    client = Elasticsearch(config.url, transport_class=FlavorTransport, **options)
    transport = client.transport
    assert isinstance(transport, FlavorTransport)
    transport.flavor = config.flavor
    return client


def client_flavor(client: Elasticsearch) -> str:
    """The flavor in use: elasticsearch or opensearch, or auto before the first request."""
    transport = client.transport
    return transport.flavor if isinstance(transport, FlavorTransport) else "elasticsearch"


class FlavorTransport(Transport):
    """The client's transport, speaking plain JSON to OpenSearch (see the module's doc).
    `flavor` "auto" is settled by the first request's `GET /` and kept; a probe that fails
    (cluster down: the transport error propagates, and the caller's request fails as it
    would have) or is refused (401: the request is then sent as it is, and fails with
    the cluster's own answer) is tried again on the next request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flavor = "auto"
        self._lock = threading.Lock()

    def perform_request(
        self, method: str, target: str, *, headers: Any = None, **kwargs: Any
    ) -> TransportApiResponse:
        flavor = self.flavor if self.flavor != "auto" else self._detect(headers, kwargs)
        if flavor != "opensearch":
            if headers is None:
                return super().perform_request(method, target, **kwargs)
            return super().perform_request(method, target, headers=headers, **kwargs)
        response = super().perform_request(method, target, headers=plain_json(headers), **kwargs)
        # OpenSearch does not name itself as Elasticsearch; the client checks that it does
        # on its first successful response.
        if "x-elastic-product" not in response.meta.headers:
            names = HttpHeaders(response.meta.headers)
            names["x-elastic-product"] = "Elasticsearch"
            response = TransportApiResponse(replace(response.meta, headers=names), response.body)
        return response

    def _detect(self, headers: Any, kwargs: Mapping[str, Any]) -> str:
        with self._lock:
            if self.flavor != "auto":
                return self.flavor
            probe = plain_json(headers)
            probe.pop("content-type", None)
            options = {key: kwargs[key] for key in ("request_timeout",) if key in kwargs}
            meta, body = super().perform_request("GET", "/", headers=probe, **options)
            if not 200 <= meta.status < 300 or not isinstance(body, Mapping):
                return "elasticsearch"  # not kept: asked again next time
            version = body.get("version")
            distribution = version.get("distribution") if isinstance(version, Mapping) else None
            self.flavor = "opensearch" if distribution == "opensearch" else "elasticsearch"
            return self.flavor


def plain_json(headers: Any) -> HttpHeaders:
    """A copy of `headers` with the compatibility media types made plain ones."""
    plain = HttpHeaders(headers or {})
    for name in ("accept", "content-type"):
        value = plain.get(name)
        if value:
            plain[name] = _COMPAT_MIMETYPE.sub(r"application/\1", value)
    return plain


def index_name(prefix: str, model: str) -> str:
    """`{prefix}-{model}`, lower-cased. When the model name is not already a valid index
    name part (upper case, spaces, ':', '/', ..., over 80 characters, or empty), unsafe runs
    become '-', the result is cut to 80 characters, and 8 hex digits of the model name's
    SHA-1 are appended: "Fraud Model" -> "{prefix}-fraud-model-1a2b3c4d", so "fraud model"
    and "Fraud-Model" still get different indices. Names that need no change keep no hash.
    """
    safe = _UNSAFE.sub("-", model.lower()).strip("-_.")[:_MAX_MODEL_PART].strip("-_.")
    if safe == model and safe:
        return f"{prefix}-{safe}"
    digest = hashlib.sha1(model.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{prefix}-{safe}-{digest}" if safe else f"{prefix}-{digest}"


def epoch_millis(timestamp_s: float) -> int:
    """Records carry epoch seconds; the index stores integer epoch milliseconds (format
    `epoch_millis`), exact on every engine, where fractional `epoch_second` values are not."""
    return round(timestamp_s * 1000)
