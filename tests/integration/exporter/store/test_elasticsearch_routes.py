"""Window reads by route on an Elasticsearch-API store: the shadows' records left out by
default, a role or candidate selected on request, records without a role read as the
primary's."""

from __future__ import annotations

import time

import pytest
from elasticsearch import Elasticsearch

from exporter.records import LogRecord, StoreColumns
from exporter.store.elasticsearch.config import epoch_millis
from exporter.store.elasticsearch.log import ElasticsearchLog, sample_key
from exporter.store.elasticsearch.read import ElasticsearchReader

START = float(int(time.time()) - 600)
END = START + 100.0


def record(i: int, role: str = "primary", candidate: str = "") -> LogRecord:
    suffix = f":shadow:{candidate}" if role == "shadow" else ""
    return LogRecord(
        id=f"r-{i}:0{suffix}",
        timestamp=START + i,
        request_id=f"r-{i}",
        row=0,
        model="credit",
        model_version="1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"x": float(i)},
        role=role,
        candidate=candidate,
    )


@pytest.fixture
def written(log: ElasticsearchLog, client: Elasticsearch) -> None:
    log.prepare(StoreColumns("credit", numeric=("x",)))
    log.write(
        [record(i) for i in range(20)]
        + [record(i, "shadow", "m2") for i in range(20)]
        + [record(20 + i, "canary", "c1") for i in range(5)]
    )
    # A record of the previous release: no role, no candidate.
    old = record(40).to_document()
    del old["role"], old["candidate"]
    old.update({"@timestamp": epoch_millis(START + 40), "sample_key": sample_key("old:0")})
    client.index(index=log.index_for("credit"), id="old:0", document=old)
    client.indices.refresh(index=log.index_for("credit"))


def test_the_shadows_are_left_out_unless_asked_for(
    written: None, reader: ElasticsearchReader
) -> None:
    assert reader.count_window("credit", START, END) == 26
    assert reader.count_window("credit", START, END, role="shadow") == 20
    assert reader.count_window("credit", START, END, role="shadow", candidate="m2") == 20
    assert reader.count_window("credit", START, END, role="shadow", candidate="m3") == 0
    assert reader.count_window("credit", START, END, role="canary", candidate="c1") == 5
    # The record without a role counts as the primary's.
    assert reader.count_window("credit", START, END, role="primary") == 21
    assert reader.count_window("credit", START, END, candidate="") == 21
    window = reader.aggregate_window(
        "credit", START, END, {"x": [-float("inf"), 10.0, float("inf")]}, [], 100,
        role="shadow", candidate="m2",
    )  # fmt: skip
    assert window.rows == 20
    assert window.numeric["x"].counts == (10, 10)
    located = reader.locate_newest("credit", 5, END, role="shadow")
    assert located.rows == 5
    assert located.start_ts == pytest.approx(START + 15)


def test_an_unknown_role_is_refused(reader: ElasticsearchReader) -> None:
    with pytest.raises(ValueError, match="role: expected one of"):
        reader.count_window("credit", START, END, role="nobody")
