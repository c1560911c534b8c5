"""The input log on the Elasticsearch-API engines, end to end through a live sidecar:
noida-db (Elasticsearch), osmem-server (OpenSearch, `elasticsearch.flavor: auto`) and the
cluster at ELASTICSEARCH_URL when that is set."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.exporter.test_input_log import SCHEMA, post_feedback, predict, predictions
from tests.support.elasticsearch import ENGINES, Noida, engine_url, noida_server, refresh_and_count
from tests.support.processes import free_port, sidecar
from tests.support.raw_upstream import RawUpstream
from tests.support.scrape import scrape, value, wait_for

INDEX = "mlmon-inputs-credit"


@pytest.fixture
def noida(tmp_path: Path) -> Iterator[Noida]:
    with noida_server(tmp_path / "noida") as server:
        yield server


@pytest.fixture(params=ENGINES)
def es_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with engine_url(request.param, tmp_path / request.param) as url:
        yield url


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(predictions) as server:
        yield server


@pytest.fixture
def schema_args(tmp_path: Path) -> list[str]:
    schema = tmp_path / "credit.yaml"
    schema.write_text(SCHEMA)
    return ["--schema", str(schema)]


@pytest.fixture
def args(noida: Noida, schema_args: list[str]) -> list[str]:
    """The sidecar's arguments: the credit schema, and the input log on noida."""
    return [*schema_args, "--store", noida.url]


def search(url: str, query: dict[str, object], index: str = INDEX) -> list[dict[str, object]]:
    refresh_and_count(url, index)  # refreshes: the sidecar never does
    request = urllib.request.Request(
        f"{url}/{index}/_search", json.dumps(query).encode(),
        {"content-type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return [hit["_source"] | {"_id": hit["_id"]} for hit in json.load(response)["hits"]["hits"]]


def wait_count(url: str, count: int, timeout: float = 60, index: str = INDEX) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = refresh_and_count(url, index)
        except OSError:
            seen = 0
        if seen >= count:
            return seen
        time.sleep(0.5)
    return seen


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.load(response))


def test_records_and_ground_truth_in_elasticsearch(
    es_url: str, upstream: RawUpstream, tmp_path: Path, schema_args: list[str]
) -> None:
    prefix = f"mlmon-test-{uuid.uuid4().hex[:10]}"  # its own indices, on any cluster
    index = f"{prefix}-credit"
    env = {"MLMON_ELASTICSEARCH__INDEX_PREFIX": prefix}
    args = [*schema_args, "--store", es_url]
    with sidecar(upstream.url, tmp_path, args=args, env=env) as running:
        late = {"request_id": "es-late", "labels": ["no", "yes", "no"]}
        assert post_feedback(running.url, late)[0] == 200
        for i in range(10):
            assert predict(running.url, f"es-{i}") == 200
        assert predict(running.url, "es-late") == 200
        assert predict(running.url, "es-3") == 200  # a retry: the same ids, stored once
        assert wait_count(es_url, 33, index=index) >= 33
        assert (
            post_feedback(running.url, {"request_id": "es-4", "row": 2, "label": "yes"})[0] == 200
        )
        deadline = time.monotonic() + 20
        hits: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            hits = search(es_url, {"query": {"term": {"request_id": "es-4"}}, "size": 10}, index)
            if any(h.get("label") == "yes" for h in hits):
                break
            time.sleep(0.5)
        samples = scrape(running.url)
    by_id = {h["_id"]: h for h in hits}
    assert by_id["es-4:2"]["label"] == "yes"
    assert by_id["es-4:2"]["features"] == {"age": 22.0, "country": "fr"}
    assert "label" not in by_id["es-4:0"]
    late_hits = search(es_url, {"query": {"term": {"request_id": "es-late"}}, "size": 10}, index)
    assert sorted((h["_id"], h["label"]) for h in late_hits) == [
        ("es-late:0", "no"), ("es-late:1", "yes"), ("es-late:2", "no")]  # fmt: skip
    assert refresh_and_count(es_url, index) == 33  # 36 written, 3 of them again
    assert value(samples, "mlmon_log_records_total", outcome="spooled") == 0
    assert value(samples, "mlmon_log_records_total", outcome="failed") == 0
    # The mapping comes from the schema, through the index template, on every engine.
    mapping: Any = get_json(f"{es_url}/{index}/_mapping")
    features = mapping[index]["mappings"]["properties"]["features"]["properties"]
    assert features["age"]["type"] == "double"
    assert features["country"]["type"] == "keyword"
    templates: Any = get_json(f"{es_url}/_index_template/{index}")
    assert [t["name"] for t in templates["index_templates"]] == [index]


def test_a_store_that_refuses_every_write_is_loud_and_loses_nothing(
    upstream: RawUpstream, tmp_path: Path, schema_args: list[str]
) -> None:
    """The 8.x client's media type forced on an OpenSearch engine: every request with a
    body is refused with 406. The refusal is counted and named on stderr, the records wait
    in the spool, and a sidecar with the right flavor writes every one of them."""
    with engine_url("osmem", tmp_path / "osmem") as es_url:
        args = [*schema_args, "--store", es_url]
        wrong = {"MLMON_ELASTICSEARCH__FLAVOR": "elasticsearch"}
        port = free_port()
        with sidecar(upstream.url, tmp_path, args=args, env=wrong, port=port) as running:
            ready = get_json(f"{running.url}/readyz")  # ready: the model server answers
            assert ready["status"] == "ready" and "refused with 406" in str(ready["input_log"])
            for i in range(5):
                assert predict(running.url, f"refused-{i}") == 200
            samples = wait_for(running.url, lambda s: value(
                s, "mlmon_log_records_total", outcome="spooled") == 15)  # fmt: skip
            output = running.output()
        assert value(samples, "mlmon_log_store_refusals_total", status="406") >= 1
        assert value(samples, "mlmon_log_records_total", outcome="failed") == 0
        assert value(samples, "mlmon_log_records_total", outcome="dropped") == 0
        assert "error: the input log refuses writes" in output  # at start-up
        assert output.count("refused with 406") >= 2  # and by the writer
        with sidecar(upstream.url, tmp_path, args=args, port=port) as fixed:
            replayed = wait_for(fixed.url, lambda s: value(
                s, "mlmon_log_records_total", outcome="replayed") == 15)  # fmt: skip
        assert value(replayed, "mlmon_log_records_total", outcome="replayed") == 15
        assert refresh_and_count(es_url, "mlmon-inputs-credit") == 15


def test_elasticsearch_stopped_30_s_while_traffic_flows_then_every_record_once(
    noida: Noida, upstream: RawUpstream, tmp_path: Path, args: list[str]
) -> None:
    with sidecar(upstream.url, tmp_path, args=args) as running:
        assert predict(running.url, "up-0") == 200
        assert wait_count(noida.url, 3) == 3
        noida.stop()
        statuses = []
        stopped_at = time.monotonic()
        i = 0
        while time.monotonic() - stopped_at < 30:
            statuses.append(predict(running.url, f"down-{i}"))
            i += 1
            time.sleep(0.2)
        samples = scrape(running.url)
        assert value(samples, "mlmon_log_records_total", outcome="spooled") > 0
        noida.start()
        expected = 3 + 3 * i
        stored = wait_count(noida.url, expected, timeout=90)
        samples = scrape(running.url)
    assert statuses == [200] * i  # no client request failed
    assert stored == expected  # every record, and each once (ids are the documents' _id)
    assert value(samples, "mlmon_log_records_total", outcome="dropped") == 0
    assert value(samples, "mlmon_log_spool_bytes") == 0
