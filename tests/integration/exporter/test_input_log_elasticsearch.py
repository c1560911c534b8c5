"""The input log on the Elasticsearch-compatible engine, end to end through a live sidecar."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.exporter.test_input_log import SCHEMA, post_feedback, predict, predictions
from tests.support.elasticsearch import Noida, noida_server
from tests.support.processes import sidecar
from tests.support.raw_upstream import RawUpstream
from tests.support.scrape import scrape, value

INDEX = "mlmon-inputs-credit"


@pytest.fixture
def noida(tmp_path: Path) -> Iterator[Noida]:
    with noida_server(tmp_path / "noida") as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(predictions) as server:
        yield server


@pytest.fixture
def args(noida: Noida, tmp_path: Path) -> list[str]:
    """The sidecar's arguments: the credit schema, and the input log on noida."""
    schema = tmp_path / "credit.yaml"
    schema.write_text(SCHEMA)
    return ["--schema", str(schema), "--store", noida.url]


def search(noida: Noida, query: dict[str, object]) -> list[dict[str, object]]:
    noida.count(INDEX)  # refreshes
    request = urllib.request.Request(
        f"{noida.url}/{INDEX}/_search", json.dumps(query).encode(),
        {"content-type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return [hit["_source"] | {"_id": hit["_id"]} for hit in json.load(response)["hits"]["hits"]]


def wait_count(noida: Noida, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = noida.count(INDEX)
        except OSError:
            seen = 0
        if seen >= count:
            return seen
        time.sleep(0.5)
    return seen


def test_records_and_ground_truth_in_elasticsearch(
    noida: Noida, upstream: RawUpstream, tmp_path: Path, args: list[str]
) -> None:
    with sidecar(upstream.url, tmp_path, args=args) as running:
        late = {"request_id": "es-late", "labels": ["no", "yes", "no"]}
        assert post_feedback(running.url, late)[0] == 200
        for i in range(10):
            assert predict(running.url, f"es-{i}") == 200
        assert predict(running.url, "es-late") == 200
        assert wait_count(noida, 33) >= 33
        assert (
            post_feedback(running.url, {"request_id": "es-4", "row": 2, "label": "yes"})[0] == 200
        )
        deadline = time.monotonic() + 20
        hits: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            hits = search(noida, {"query": {"term": {"request_id": "es-4"}}, "size": 10})
            if any(h.get("label") == "yes" for h in hits):
                break
            time.sleep(0.5)
    by_id = {h["_id"]: h for h in hits}
    assert by_id["es-4:2"]["label"] == "yes"
    assert by_id["es-4:2"]["features"] == {"age": 22.0, "country": "fr"}
    assert "label" not in by_id["es-4:0"]
    late_hits = search(noida, {"query": {"term": {"request_id": "es-late"}}, "size": 10})
    assert sorted((h["_id"], h["label"]) for h in late_hits) == [
        ("es-late:0", "no"), ("es-late:1", "yes"), ("es-late:2", "no")]  # fmt: skip
    assert noida.count(INDEX) == 33


def test_elasticsearch_stopped_30_s_while_traffic_flows_then_every_record_once(
    noida: Noida, upstream: RawUpstream, tmp_path: Path, args: list[str]
) -> None:
    with sidecar(upstream.url, tmp_path, args=args) as running:
        assert predict(running.url, "up-0") == 200
        assert wait_count(noida, 3) == 3
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
        stored = wait_count(noida, expected, timeout=90)
        samples = scrape(running.url)
    assert statuses == [200] * i  # no client request failed
    assert stored == expected  # every record, and each once (ids are the documents' _id)
    assert value(samples, "mlmon_log_records_total", outcome="dropped") == 0
    assert value(samples, "mlmon_log_spool_bytes") == 0
