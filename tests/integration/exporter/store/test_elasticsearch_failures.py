"""The Elasticsearch input log when the cluster is down, busy or refusing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from exporter.records import GroundTruth
from exporter.store.base import StoreRefused, StoreUnavailable
from exporter.store.elasticsearch.log import ElasticsearchLog
from tests.integration.exporter.store.records import IRIS, NOW, count, record, source
from tests.support.elasticsearch import FlakyProxy, noida_server


def test_unreachable_store_raises_store_unavailable_then_recovers(tmp_path: Path) -> None:
    with noida_server(tmp_path) as server:
        log = ElasticsearchLog.from_url(
            server.url, request_timeout_s=1.0, retry_budget_s=3.0, backoff_s=0.1
        )
        try:
            log.prepare(IRIS)
            log.write([record(1)])
            server.stop()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                log.write([record(2)])
            assert time.monotonic() - started < 3.0 + 1.0
            with pytest.raises(StoreUnavailable):
                log.add_ground_truth([GroundTruth(id="req-1:0", label="a", timestamp=NOW)])
            server.start()  # same port, same data directory
            log.write([record(2)])
            log.add_ground_truth([GroundTruth(id="req-1:0", label="a", timestamp=NOW)])
            client = Elasticsearch(server.url, request_timeout=5)
            assert count(client, log.index_for("iris")) == 2
            assert source(client, log.index_for("iris"), "req-1:0")["label"] == "a"
            client.close()
        finally:
            log.close()


@pytest.mark.parametrize(
    ("status", "per_item"), [(429, False), (503, False), (429, True), (503, True)]
)
def test_busy_cluster_is_retried_with_backoff(
    es_url: str, prefix: str, client: Elasticsearch, status: int, per_item: bool
) -> None:
    with FlakyProxy(es_url, failures=2, status=status, per_item=per_item) as proxy:
        log = ElasticsearchLog.from_url(proxy.url, index_prefix=prefix, backoff_s=0.05)
        log.prepare(IRIS)
        log.write([record(i) for i in range(10)])
        log.close()
    assert proxy.bulk_requests == 3
    assert count(client, f"{prefix}-iris") == 10


def test_retries_are_bounded_in_attempts_and_time(es_url: str, prefix: str) -> None:
    with FlakyProxy(es_url, failures=100, status=429, per_item=True) as proxy:
        log = ElasticsearchLog.from_url(
            proxy.url, index_prefix=prefix, max_attempts=3, retry_budget_s=2.0, backoff_s=0.1
        )
        log.prepare(IRIS)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="429 es_rejected_execution_exception"):
            log.write([record(1)])
        elapsed = time.monotonic() - started
        log.close()
    assert proxy.bulk_requests == 3
    assert 0.05 + 0.1 <= elapsed < 2.0  # two backoffs of at least half their step


def test_a_request_refused_for_good_is_not_retried(es_url: str, prefix: str) -> None:
    with FlakyProxy(es_url, failures=100, status=403) as proxy:
        log = ElasticsearchLog.from_url(proxy.url, index_prefix=prefix)
        log.prepare(IRIS)
        with pytest.raises(StoreRefused, match="refused with 403 es_rejected_execution"):
            log.write([record(1)])
        log.close()
    assert proxy.bulk_requests == 1
