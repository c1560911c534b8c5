"""The Elasticsearch input log against a real Elasticsearch API (noida-db, and the cluster
at ELASTICSEARCH_URL when set): mapping, writes, upserts, retention, names."""

from __future__ import annotations

import dataclasses
import time

import pytest
from elasticsearch import Elasticsearch

from exporter.records import GroundTruth, PredictionValue, StoreColumns
from exporter.store.elasticsearch.config import index_name
from exporter.store.elasticsearch.log import ElasticsearchLog
from exporter.store.elasticsearch.read import ElasticsearchReader
from tests.integration.exporter.store.records import IRIS, NOW, count, field_types, record, source


def test_prepare_generates_the_mapping_from_the_columns(
    log: ElasticsearchLog, client: Elasticsearch
) -> None:
    log.prepare(IRIS)
    index = log.index_for("iris")
    types = field_types(client, index)
    expected = {
        "@timestamp": "date",
        "request_id": "keyword",
        "row": "integer",
        "model": "keyword",
        "model_version": "keyword",
        "protocol": "keyword",
        "status": "integer",
        "latency_ms": "double",
        "issues": "keyword",
        "features.sepal_length": "double",
        "features.petal_width": "double",
        "features.color": "keyword",
        "prediction.value": "double",
        "prediction.label": "keyword",
        "prediction.score": "double",
        "label": "keyword",
        "label.num": "double",
        "label_timestamp": "date",
        "sample_key": "double",
    }
    assert {path: types.get(path) for path in expected} == expected
    settings = client.indices.get_settings(index=index).body[index]["settings"]["index"]
    assert settings["refresh_interval"] == "5s"
    assert client.indices.exists_index_template(name=index)

    # A changed schema adds its new columns to the existing index.
    log.prepare(StoreColumns(model="iris", numeric=(*IRIS.numeric, "petal_length")))
    assert field_types(client, index)["features.petal_length"] == "double"


def test_features_of_a_schemaless_model_are_typed_by_the_dynamic_templates(
    log: ElasticsearchLog, client: Elasticsearch
) -> None:
    log.write([record(1, model="free", whole=3, fraction=2.5, word="x")])
    types = field_types(client, log.index_for("free"))
    assert types["features.whole"] == "double"
    assert types["features.fraction"] == "double"
    assert types["features.word"] == "keyword"


def test_bulk_write_then_count_and_rewrite_stores_each_record_once(
    log: ElasticsearchLog, client: Elasticsearch, reader: ElasticsearchReader
) -> None:
    log.prepare(IRIS)
    batch = [record(i, ts=NOW - i) for i in range(2500)]  # three bulk requests of <= 1000
    log.write(batch)
    index = log.index_for("iris")
    assert count(client, index) == 2500
    log.write(batch)  # a retry of the same batch
    assert count(client, index) == 2500
    assert reader.count_window("iris", NOW - 99.5, NOW + 1) == 100
    assert reader.count_window("iris", NOW + 1, NOW + 2) == 0
    stored = source(client, index, "req-3:0")
    assert stored["@timestamp"] == round((NOW - 3) * 1000)
    assert stored["features"] == {"sepal_length": 8.0, "petal_width": None, "color": "red"}
    assert stored["prediction"] == {"value": 0.7, "label": "setosa", "score": 0.9}
    assert "label" not in stored
    assert log.rejected == 0


@pytest.mark.parametrize("label_first", [True, False], ids=["label-first", "record-first"])
def test_ground_truth_upserts_in_either_order(
    log: ElasticsearchLog, client: Elasticsearch, label_first: bool
) -> None:
    log.prepare(IRIS)
    truth = [GroundTruth(id="req-1:0", label="versicolor", timestamp=NOW + 5)]
    if label_first:
        log.add_ground_truth(truth)
        log.write([record(1)])
    else:
        log.write([record(1)])
        log.add_ground_truth(truth)
    index = log.index_for("iris")
    assert count(client, index) == 1
    stored = source(client, index, "req-1:0")
    assert stored["label"] == "versicolor"
    assert stored["label_timestamp"] == round((NOW + 5) * 1000)
    assert stored["features"]["sepal_length"] == 6.0
    assert stored["request_id"] == "req-1"


def test_a_label_for_an_unwritten_record_waits_in_each_model_index_out_of_windows(
    log: ElasticsearchLog, client: Elasticsearch, reader: ElasticsearchReader
) -> None:
    log.prepare(IRIS)
    log.prepare(StoreColumns(model="wine", numeric=("acidity",)))
    log.add_ground_truth([GroundTruth(id="req-9:0", label=1, timestamp=NOW)])
    log.write([record(9, model="wine", acidity=3.5)])
    wine, iris = log.index_for("wine"), log.index_for("iris")
    assert source(client, wine, "req-9:0")["label"] == 1
    assert count(client, wine) == 1
    assert count(client, iris) == 1  # the label alone: no @timestamp, so in no window
    assert reader.count_window("iris", NOW - 3600, NOW + 3600) == 0
    assert reader.count_window("wine", NOW - 3600, NOW + 3600) == 1


def test_labels_of_every_kind_are_keywords_and_numbers_also_numeric(
    log: ElasticsearchLog, client: Elasticsearch
) -> None:
    log.prepare(IRIS)
    log.write([record(i) for i in range(4)])
    labels: list[str | float | int | bool] = ["cat", 3, 2.5, True]
    log.add_ground_truth(
        [GroundTruth(id=f"req-{i}:0", label=label, timestamp=NOW) for i, label in enumerate(labels)]
    )
    index = log.index_for("iris")
    client.indices.refresh(index=index)
    numeric = client.count(index=index, query={"range": {"label.num": {"gte": 2, "lte": 3}}})
    assert numeric.body["count"] == 2
    assert client.count(index=index, query={"term": {"label": "cat"}}).body["count"] == 1
    assert log.rejected == 0


def test_rejected_records_are_counted_and_skipped_not_retried(
    log: ElasticsearchLog, client: Elasticsearch, caplog: pytest.LogCaptureFixture
) -> None:
    log.prepare(IRIS)
    bad = record(0, sepal_length="not a number", petal_width=None, color="red")
    log.write([bad, record(1), record(2)])
    assert log.rejected == 1
    assert count(client, log.index_for("iris")) == 2
    assert "rejected 1 of 3 records" in caplog.text


def test_non_finite_values_are_stored_as_null(log: ElasticsearchLog, client: Elasticsearch) -> None:
    log.write([record(0, sepal_length=float("nan"), petal_width=float("inf"))])
    stored = source(client, log.index_for("iris"), "req-0:0")
    assert stored["features"] == {"sepal_length": None, "petal_width": None}


def test_purge_deletes_old_records_and_orphan_labels(
    es_url: str, prefix: str, client: Elasticsearch
) -> None:
    day = 86400.0
    log = ElasticsearchLog.from_url(es_url, index_prefix=prefix, retention_days=0)
    log.prepare(IRIS)
    log.write([record(1, ts=NOW - 40 * day), record(2, ts=NOW - 10 * day), record(3)])
    log.add_ground_truth([GroundTruth(id="never-logged:0", label="x", timestamp=NOW - 40 * day)])
    log.add_ground_truth([GroundTruth(id="soon-logged:0", label="y", timestamp=NOW)])
    index = log.index_for("iris")
    client.indices.refresh(index=index)
    assert log.purge(NOW - 30 * day, wait=True) == 2
    client.indices.refresh(index=index)
    remaining = client.search(index=index, size=10, source=False).body["hits"]["hits"]
    assert sorted(hit["_id"] for hit in remaining) == ["req-2:0", "req-3:0", "soon-logged:0"]
    log.close()


def test_writes_start_the_retention_purge(client: Elasticsearch, es_url: str, prefix: str) -> None:
    # Written without retention, so that no purge races the writes (an engine may or may
    # not see them before a refresh); then refreshed, so the purge sees both on any engine.
    log = ElasticsearchLog.from_url(es_url, index_prefix=prefix, retention_days=0)
    log.write([record(1, ts=NOW - 31 * 86400.0), record(2)])
    log.close()
    index = log.index_for("iris")
    assert count(client, index) == 2
    restarted = ElasticsearchLog.from_url(es_url, index_prefix=prefix)
    restarted.write([record(2)])  # the first write of a backend purges
    restarted.close()
    deadline = time.monotonic() + 20  # a real cluster purges in a background task
    while count(client, index) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count(client, index) == 1


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("iris", "p-iris"),
        ("fraud_v2.1", "p-fraud_v2.1"),
        ("Fraud Model", "p-fraud-model-"),
        ("fraud model", "p-fraud-model-"),
        ("team/model:v1", "p-team-model-v1-"),
        ("_hidden", "p-hidden-"),
        ("..", "p-"),
        ("", "p-"),
        ("Über*Modell?", "p-ber-modell-"),
        ("m" * 300, "p-" + "m" * 80 + "-"),
    ],
)
def test_index_names_are_valid_bounded_and_distinct(model: str, expected: str) -> None:
    name = index_name("p", model)
    if expected.endswith("-"):
        assert name.startswith(expected)
        assert len(name) == len(expected) + 8  # a hash tells apart the names folded together
    else:
        assert name == expected


def test_names_folded_together_still_get_distinct_indices(
    log: ElasticsearchLog, client: Elasticsearch
) -> None:
    models = ["Fraud Model", "fraud model", "fraud-model", "team/model:v1", "", "m" * 300]
    names = {log.index_for(model) for model in models}
    assert len(names) == len(models)
    for model in models:  # every name is one the cluster accepts
        log.prepare(StoreColumns(model=model, numeric=("x",)))
    assert all(client.indices.exists(index=name) for name in names)


def test_a_column_that_changes_kind_keeps_its_type_and_misfits_are_rejected(
    log: ElasticsearchLog, client: Elasticsearch, caplog: pytest.LogCaptureFixture
) -> None:
    log.prepare(IRIS)
    log.prepare(StoreColumns(model="iris", categorical=("sepal_length",)))  # no raise
    assert "keeps its mapping" in caplog.text
    assert field_types(client, log.index_for("iris"))["features.sepal_length"] == "double"
    log.write([record(1, sepal_length="long"), record(2, sepal_length="7.5")])
    assert log.rejected == 1  # "7.5" still parses as a double
    assert count(client, log.index_for("iris")) == 1


def test_credentials_move_out_of_the_url(es_url: str) -> None:
    log = ElasticsearchLog.from_url("https://ann:p%40ss@es.example:9243/", request_timeout_s=2)
    assert log.config.url == "https://es.example:9243"
    assert (log.config.username, log.config.password) == ("ann", "p@ss")
    log.close()
    with pytest.raises(ValueError, match="index_prefix"):
        ElasticsearchLog.from_url(es_url, index_prefix="Upper")


def test_probabilities_are_doubles_and_a_label_logged_with_its_record_arrived_with_it(
    log: ElasticsearchLog, client: Elasticsearch
) -> None:
    log.prepare(IRIS)
    probabilities = {"setosa": 0.75, "versicolor": 0.25, "virginica": 0.0}
    given = dataclasses.replace(
        record(1),
        prediction=PredictionValue(label="setosa", score=0.75, probabilities=probabilities),
        label="setosa",
    )
    log.write([given])
    index = log.index_for("iris")
    assert count(client, index) == 1
    types = field_types(client, index)
    assert {types.get(f"prediction.probabilities.{name}") for name in probabilities} == {"double"}
    stored = source(client, index, "req-1:0")
    assert stored["prediction"]["probabilities"] == probabilities
    assert stored["label_timestamp"] == stored["@timestamp"]  # a delay of 0, as in SQLite
