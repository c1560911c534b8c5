"""Elasticsearch targets: a noida-db (Elasticsearch API) and an osmem-server (OpenSearch
API) started for the session, and the real cluster at ELASTICSEARCH_URL when that is set
(every test then runs against each)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from exporter.store.elasticsearch.config import config_from_url, make_client
from exporter.store.elasticsearch.log import ElasticsearchLog
from exporter.store.elasticsearch.read import ElasticsearchReader
from tests.support.elasticsearch import ENGINES, engine_url


@pytest.fixture(scope="session", params=ENGINES)
def es_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with engine_url(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture
def prefix(es_url: str) -> Iterator[str]:
    """An index prefix of this test's own; its indices and templates are deleted after."""
    name = f"mlmon-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = make_client(config_from_url(es_url))
    try:
        # Wildcard deletes are refused (action.destructive_requires_name): name each index.
        indices = client.indices.get_alias(index=f"{name}-*").body
        if indices:
            client.indices.delete(index=",".join(indices))
        templates = client.options(ignore_status=404).indices.get_index_template(name=f"{name}-*")
        for template in templates.body.get("index_templates", []):
            client.indices.delete_index_template(name=template["name"])
    finally:
        client.close()


@pytest.fixture
def client(es_url: str) -> Iterator[Elasticsearch]:
    es = make_client(config_from_url(es_url))
    yield es
    es.close()


@pytest.fixture
def log(es_url: str, prefix: str) -> Iterator[ElasticsearchLog]:
    store = ElasticsearchLog.from_url(es_url, index_prefix=prefix, backoff_s=0.05)
    yield store
    store.close()


@pytest.fixture
def reader(es_url: str, prefix: str) -> Iterator[ElasticsearchReader]:
    store = ElasticsearchReader.from_url(es_url, index_prefix=prefix)
    yield store
    store.close()
