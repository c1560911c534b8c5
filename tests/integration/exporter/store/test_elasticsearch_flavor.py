"""`elasticsearch.flavor`: the same requests to Elasticsearch and OpenSearch, only the media
type differs; `auto` asks the cluster; a cluster refusing every request is a loud error."""

from __future__ import annotations

from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from exporter.errors import SettingsError
from exporter.records import GroundTruth
from exporter.settings import load as load_sidecar_settings
from exporter.store.base import StoreRefused, StoreUnavailable
from exporter.store.elasticsearch.config import (
    ElasticsearchConfig,
    client_flavor,
    config_from_url,
    make_client,
    plain_json,
)
from exporter.store.elasticsearch.log import ElasticsearchLog
from stats_service.settings import load as load_stats_settings
from tests.integration.exporter.store.records import IRIS, NOW, count, record
from tests.support.elasticsearch import FlakyProxy, engine_url
from tests.support.processes import free_port


def test_auto_asks_the_cluster_on_the_first_request(es_url: str) -> None:
    client = make_client(config_from_url(es_url))
    assert client_flavor(client) == "auto"  # no request at construction
    distribution = client.info().body["version"].get("distribution", "elasticsearch")
    assert client_flavor(client) == (
        "opensearch" if distribution == "opensearch" else "elasticsearch"
    )
    client.close()


def test_osmem_is_detected_as_opensearch_and_noida_as_elasticsearch(tmp_path: Path) -> None:
    for target, expected in (("osmem", "opensearch"), ("noida", "elasticsearch")):
        with engine_url(target, tmp_path / target) as url:
            client = make_client(config_from_url(url))
            client.indices.exists(index="nothing")
            assert client_flavor(client) == expected
            client.close()


def test_plain_json_is_accepted_by_every_engine(es_url: str, prefix: str) -> None:
    """`flavor: opensearch` sends application/json, which Elasticsearch 8 accepts too."""
    log = ElasticsearchLog.from_url(es_url, index_prefix=prefix, flavor="opensearch")
    log.prepare(IRIS)
    log.write([record(i) for i in range(5)])
    log.write([record(i) for i in range(5)])  # a retry: stored once
    client = make_client(config_from_url(es_url, flavor="opensearch"))
    assert count(client, log.index_for("iris")) == 5
    client.close()
    log.close()


def test_the_elasticsearch_media_type_against_opensearch_is_refused_loudly(
    tmp_path: Path,
) -> None:
    with engine_url("osmem", tmp_path) as url:
        log = ElasticsearchLog.from_url(url, flavor="elasticsearch")
        with pytest.raises(StoreRefused, match=r"refused with 406 .*not supported") as refused:
            log.prepare(IRIS)
        assert refused.value.status == 406
        assert isinstance(refused.value, StoreUnavailable)  # the writer spools, never drops
        with pytest.raises(StoreRefused, match="406"):
            log.write([record(1)])
        log.close()
        # The same engine with `auto`: everything goes through.
        log = ElasticsearchLog.from_url(url)
        log.prepare(IRIS)
        log.write([record(1)])
        client = make_client(config_from_url(url))
        assert count(client, log.index_for("iris")) == 1
        client.close()
        log.close()


def test_a_cluster_down_at_start_up_is_asked_again_later() -> None:
    log = ElasticsearchLog.from_url(f"http://127.0.0.1:{free_port()}", request_timeout_s=1.0)
    with pytest.raises(StoreUnavailable):
        log.prepare(IRIS)
    assert client_flavor(log._client) == "auto"
    log.close()


def test_compatibility_media_types_become_plain_ones() -> None:
    headers = plain_json(
        {
            "Accept": "application/vnd.elasticsearch+json; compatible-with=8",
            "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
            "Authorization": "ApiKey x",
        }
    )
    assert headers["accept"] == "application/json"
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["authorization"] == "ApiKey x"


def test_flavor_is_a_setting_of_both_services(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flavor"):
        ElasticsearchConfig(url="http://127.0.0.1:9200", flavor="solr")
    env = {"MLMON_UPSTREAM": "http://127.0.0.1:9", "MLMON_ELASTICSEARCH__FLAVOR": "opensearch"}
    assert load_sidecar_settings(environ=env).elasticsearch.flavor == "opensearch"
    with pytest.raises(SettingsError, match="flavor"):
        load_sidecar_settings(environ={**env, "MLMON_ELASTICSEARCH__FLAVOR": "solr"})
    stats = load_stats_settings(
        environ={"MLMON_BASELINES": "m=b.json", "MLMON_ELASTICSEARCH__FLAVOR": "opensearch"}
    )
    assert stats.elasticsearch.flavor == "opensearch"


def test_every_client_of_the_suite_sends_what_opensearch_takes(client: Elasticsearch) -> None:
    """The fixtures' own client (cleanup, counts) works on every engine too."""
    assert client.cluster.health().body["status"] in ("green", "yellow")


def test_labels_refused_for_good_are_store_unavailable_for_the_feedback_endpoint(
    es_url: str, prefix: str
) -> None:
    """/feedback answers 503 on StoreUnavailable: a refused label bulk names its reason."""
    log = ElasticsearchLog.from_url(es_url, index_prefix=prefix)
    log.prepare(IRIS)
    log.write([record(1)])
    log.close()
    with FlakyProxy(es_url, failures=100, status=403) as proxy:
        labelled = ElasticsearchLog.from_url(proxy.url, index_prefix=prefix)
        labelled.prepare(IRIS)
        with pytest.raises(StoreUnavailable, match="refused with 403"):
            labelled.add_ground_truth([GroundTruth(id="req-1:0", label="a", timestamp=NOW)])
        labelled.close()
