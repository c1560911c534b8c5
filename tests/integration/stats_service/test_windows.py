"""Window reads into a WindowSummary: the same records through SQLite and Elasticsearch
(noida-db, osmem-server as an OpenSearch cluster, and the cluster at ELASTICSEARCH_URL
when set) give the same summary, and both match what the records hold."""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.records import GroundTruth, LabelValue, LogRecord, PredictionValue, StoreColumns
from exporter.schema import Schema, parse_schema
from exporter.store.base import StoreUnavailable
from exporter.store.sqlite.log import SqliteLog
from stats_service.baseline.build import build_baseline
from stats_service.baseline.contents import Baseline, NumericFeatureBaseline
from stats_service.settings import WindowSpec
from stats_service.windows import open_window_reader
from stats_service.windows.spec import WindowReader
from stats_service.windows.summary import CategoricalSummary, NumericSummary, WindowSummary
from tests.support.elasticsearch import ENGINES, engine_url, scratch_log
from tests.support.processes import free_port
from tests.support.stores import sqlite_locked

START = float(int(time.time()) - 7200)  # whole seconds: every timestamp is exact in ms
STEP = 0.25
RECORDS = 1200
# Records i with START + i * STEP in [WINDOW_START, NOW): i = 200 .. 999, both ends there.
WINDOW_START, NOW = START + 200 * STEP, START + 1000 * STEP
TIME_WINDOW = WindowSpec("200s", duration_s=NOW - WINDOW_START)
COUNT_WINDOW = WindowSpec("last_300", rows=300)
# Logged: x, y, colour and two features the baseline does not know.
STORED_NUMERIC, STORED_CATEGORICAL = ("x", "y", "extra"), ("colour", "region")
MODELS = ("reg", "cls")  # prediction counted on prediction.value / prediction.label
# Ground truth posted with records (more comes later): a text "3" stays text, True is 1.0.
LABELS: list[LabelValue] = ["cat", 3, 2.5, True, "3"]
CLASSES = ["setosa", "versicolor", "virginica"]


def schema(task: str) -> Schema:
    """x, y, colour are logged; z and shade are in the baseline but never in the store."""
    return parse_schema(
        {
            "model": "reg",
            "features": [
                {"name": "x", "type": "numeric", "nullable": True},
                {"name": "y", "type": "numeric", "nullable": True},
                {"name": "z", "type": "numeric", "nullable": True},
                {"name": "colour", "type": "categorical", "nullable": True},
                {"name": "shade", "type": "categorical", "nullable": True},
            ],
            "prediction": {"task": task},
        },
        "schema.yaml",
    )


@dataclass(frozen=True)
class Baselines:
    regression: Baseline  # numeric prediction: counted on prediction.value
    multiclass: Baseline  # categorical prediction: counted on prediction.label


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Baselines:
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("training") / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["x", "y", "z", "colour", "shade", "value", "label"])
        for _ in range(2000):
            writer.writerow(
                [
                    int(rng.integers(0, 21)),
                    round(float(rng.normal()), 4),
                    round(float(rng.normal()), 4),
                    rng.choice(["red", "green", "blue"]),
                    rng.choice(["dark", "light"]),
                    round(float(rng.random()), 3),
                    rng.choice(CLASSES),
                ]
            )
    return Baselines(
        build_baseline(schema("regression"), path, prediction_column="value", sample_size=300),
        build_baseline(schema("multiclass"), path, prediction_column="label", sample_size=300),
    )


def live_records(baseline: Baseline, model: str) -> list[LogRecord]:
    """x: halves from -3 to 24 (training: integers 0..20); y: exactly the baseline's edges,
    minimum and maximum among 4-decimal values, which SQLite keeps as float32."""
    rng = np.random.default_rng(5)
    y_feature = baseline.feature("y")
    assert isinstance(y_feature, NumericFeatureBaseline)
    assert y_feature.minimum is not None and y_feature.maximum is not None
    exact = [*y_feature.edges[1:-1], y_feature.minimum, y_feature.maximum]
    records = []
    for i in range(RECORDS):
        y = exact[i % len(exact)] if i % 3 == 0 else round(float(rng.normal()), 4)
        predicted = CLASSES[i % 3] if i % 11 else "unknown"
        records.append(
            LogRecord(
                id=f"{model}-{i}:0",
                timestamp=START + i * STEP,
                request_id=f"{model}-{i}",
                row=0,
                model=model,
                model_version="1",
                protocol="v2",
                status=200,
                latency_ms=1.0,
                features={
                    "x": None if i % 13 == 0 else float(rng.integers(-6, 49)) / 2,
                    "y": None if i % 10 == 0 else y,
                    "colour": None if i % 17 == 0 else str(rng.choice(["red", "green", "pink"])),
                    "extra": 1.5,
                    "region": "eu",
                },
                prediction=(
                    None
                    if i % 19 == 0
                    else PredictionValue(
                        value=round(float(rng.random()) * 1.2, 3),
                        label=predicted,
                        score=0.5,
                        probabilities=_probabilities(i) if model == "cls" and i % 2 else None,
                    )
                ),
                label=LABELS[(i // 4) % len(LABELS)] if i % 4 == 0 and i % 8 else None,
            )
        )
    return records


def _probabilities(i: int) -> dict[str, float]:
    """Every class's for most rows; one class left out of some (NaN there when read)."""
    p = [0.25, 0.5, 0.25] if i % 3 else [0.125, 0.125, 0.75]
    given = dict(zip(CLASSES, p, strict=True))
    return {k: v for k, v in given.items() if k != "virginica"} if i % 7 == 0 else given


def late_labels(model: str) -> list[GroundTruth]:
    """Ground truth posted after its record, through /feedback."""
    return [
        GroundTruth(id=f"{model}-{i}:0", label="late", timestamp=NOW) for i in range(8, RECORDS, 40)
    ]


@dataclass(frozen=True)
class Stores:
    sqlite: WindowReader
    elasticsearch: WindowReader
    records: dict[str, list[LogRecord]]  # by model
    sqlite_path: Path


@pytest.fixture(scope="module", params=ENGINES)
def es_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with engine_url(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture(scope="module")
def stores(
    es_url: str, baselines: Baselines, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stores]:
    records = {model: live_records(baselines.regression, model) for model in MODELS}
    path = tmp_path_factory.mktemp("sqlite") / "windows.db"
    with SqliteLog(path) as sqlite_log:
        for model in MODELS:
            sqlite_log.prepare(StoreColumns(model, STORED_NUMERIC, STORED_CATEGORICAL))
            sqlite_log.write(records[model])
            sqlite_log.add_ground_truth(late_labels(model))
    with scratch_log(es_url) as scratch:
        for model in MODELS:
            scratch.log.prepare(StoreColumns(model, STORED_NUMERIC, STORED_CATEGORICAL))
            scratch.log.write(records[model])
            scratch.log.write(records[model][-100:])  # a retried batch: stored once, not twice
            scratch.log.add_ground_truth(late_labels(model))
        scratch.refresh()
        sqlite = open_window_reader(f"sqlite:///{path}")
        elasticsearch = open_window_reader(es_url, index_prefix=scratch.prefix)
        yield Stores(sqlite, elasticsearch, records, path)
        sqlite.close()
        elasticsearch.close()


def both(stores: Stores, model: str, spec: WindowSpec, baseline: Baseline) -> list[WindowSummary]:
    return [
        reader.read(model, spec, baseline, NOW) for reader in (stores.sqlite, stores.elasticsearch)
    ]


def comparable(summary: WindowSummary) -> dict[str, Any]:
    """Everything the statistics use, made order-free: SQLite returns rows by time,
    Elasticsearch samples and labelled rows by sample_key."""

    def column(c: NumericSummary | CategoricalSummary | None) -> Any:
        if isinstance(c, NumericSummary):
            sample = sorted(c.sample.astype(np.float32).tolist())  # see _as_float32
            return (c.counts, c.missing, c.below_minimum, c.above_maximum, sample)
        if isinstance(c, CategoricalSummary):
            return (dict(c.counts), c.missing, c.other)
        return None

    labelled = summary.labelled
    rows = zip(
        labelled.truth,
        _as_float32(labelled.predicted_value),
        labelled.predicted_label,
        _as_float32(labelled.score),
        _per_row(labelled.probabilities, labelled.count),
        _as_float32(labelled.delay),
        strict=True,
    )
    predictions = summary.predictions
    answered = zip(
        _as_float32(predictions.value),
        predictions.label,
        _as_float32(predictions.score),
        _per_row(predictions.probabilities, predictions.count),
        strict=True,
    )
    return {
        "rows": summary.rows,
        "start_ts": round(summary.start_ts, 3),
        "end_ts": summary.end_ts,
        "columns": {name: column(c) for name, c in summary.columns.items()},
        "prediction": column(summary.prediction),
        "row_sample": sorted((tuple(_as_float32(row)) for row in summary.row_sample), key=repr),
        "labelled": sorted(rows, key=repr),
        "predictions": (predictions.rows, sorted(answered, key=repr)),
    }


def _per_row(columns: Mapping[str, np.ndarray[Any, Any]], count: int) -> list[dict[str, float]]:
    """Each row's probabilities, the classes it gives (not NaN) only."""
    return [
        {name: float(c[i]) for name, c in sorted(columns.items()) if not math.isnan(c[i])}
        for i in range(count)
    ]


def _as_float32(values: np.ndarray[Any, Any]) -> list[float | None]:
    """Values as SQLite keeps features (float32; Elasticsearch keeps doubles), None = NaN."""
    return [None if math.isnan(v) else v for v in values.astype(np.float32).tolist()]


@pytest.mark.parametrize("spec", [TIME_WINDOW, COUNT_WINDOW], ids=["time", "count"])
@pytest.mark.parametrize("model", MODELS)
def test_sqlite_and_elasticsearch_summarise_the_same_records_alike(
    stores: Stores, baselines: Baselines, spec: WindowSpec, model: str
) -> None:
    baseline = baselines.regression if model == "reg" else baselines.multiclass
    sqlite, elasticsearch = both(stores, model, spec, baseline)
    assert comparable(sqlite) == comparable(elasticsearch)
    assert (sqlite.model, sqlite.window) == (elasticsearch.model, elasticsearch.window)

    # And both hold what the records say (numpy on the records, not on either store).
    first = 200 if spec is TIME_WINDOW else 700
    inside = stores.records[model][first:1000]  # [start, end): the record at NOW is out
    assert sqlite.rows == len(inside)
    assert sqlite.start_ts == inside[0].timestamp
    assert sqlite.end_ts == NOW
    x_baseline = baseline.feature("x")
    assert isinstance(x_baseline, NumericFeatureBaseline)
    assert (x_baseline.minimum, x_baseline.maximum) == (0, 20)
    x = sqlite.columns["x"]
    assert isinstance(x, NumericSummary)
    xs = np.array([r.features["x"] for r in inside if r.features["x"] is not None], dtype=float)
    edges = np.array(x_baseline.edges)
    which = np.searchsorted(edges, xs, side="right") - 1
    assert x.counts == tuple(np.bincount(which, minlength=len(edges) - 1).tolist())
    assert x.missing == sum(r.features["x"] is None for r in inside) > 0
    assert x.below_minimum == np.count_nonzero(xs < 0) > 0
    assert x.above_maximum == np.count_nonzero(xs > 20) > 0
    y = sqlite.columns["y"]
    assert isinstance(y, NumericSummary)
    assert y.missing == sum(r.features["y"] is None for r in inside) > 0
    # Training's own minimum and maximum are in range, though SQLite keeps float32.
    assert (y.below_minimum, y.above_maximum) == (0, 0)
    colour = sqlite.columns["colour"]
    assert isinstance(colour, CategoricalSummary)
    colours = Counter(r.features["colour"] for r in inside)
    assert colour.missing == colours.pop(None) > 0
    assert colour.counts == colours
    # In the baseline, never logged: all missing. Logged, not in the baseline: left out.
    z = sqlite.columns["z"]
    assert isinstance(z, NumericSummary)
    assert (z.present, z.missing) == (0, len(inside))
    assert sqlite.columns["shade"] == CategoricalSummary({}, missing=len(inside))
    assert set(sqlite.columns) == {"x", "y", "z", "colour", "shade"}
    assert sqlite.row_sample.shape == (len(inside), 3)  # the baseline's x, y, z

    predictions = [r.prediction for r in inside]
    assert sqlite.prediction is not None
    assert sqlite.prediction.missing == predictions.count(None) > 0
    if model == "reg":
        assert isinstance(sqlite.prediction, NumericSummary)
        assert isinstance(baseline.prediction, NumericFeatureBaseline)
        top = baseline.prediction.maximum
        assert top is not None
        values = [p.value for p in predictions if p is not None and p.value is not None]
        assert sqlite.prediction.above_maximum == sum(v > top for v in values) > 0
    else:
        assert isinstance(sqlite.prediction, CategoricalSummary)
        assert sqlite.prediction.counts == Counter(p.label for p in predictions if p)

    late = {truth.id for truth in late_labels(model)}
    truths = ["late" if r.id in late else r.label for r in inside if r.id in late or r.label]
    expected = Counter(t if isinstance(t, str) else float(t) for t in truths if t is not None)
    assert Counter(sqlite.labelled.truth) == expected
    assert {"3", 3.0, 1.0, "late"} <= set(expected)  # text "3" stays text, True reads 1.0
    # Label delay: none for a label logged with its record, NOW - ts for a late one.
    delays = sorted(
        NOW - r.timestamp if r.id in late else 0.0
        for r in inside
        if r.id in late or r.label is not None
    )
    assert sorted(sqlite.labelled.delay.tolist()) == delays
    if model == "cls":  # every class's probability of the rows that gave them
        given = [
            r.prediction.probabilities
            for r in inside
            if r.prediction and r.prediction.probabilities
        ]
        probabilities = sqlite.predictions.probabilities
        assert set(probabilities) == set(CLASSES) and len(given) > 0
        assert np.count_nonzero(~np.isnan(probabilities["setosa"])) == len(given)
        assert np.nansum(probabilities["versicolor"]) == sum(p["versicolor"] for p in given)
        assert np.count_nonzero(~np.isnan(probabilities["virginica"])) < len(given)
    else:
        assert sqlite.predictions.probabilities == {}  # a regression's read skips them


def test_count_window_longer_than_the_log_holds_every_record_before_now(
    stores: Stores, baselines: Baselines
) -> None:
    spec = WindowSpec("last_5000", rows=5000)
    sqlite, elasticsearch = both(stores, "reg", spec, baselines.regression)
    assert comparable(sqlite) == comparable(elasticsearch)
    assert sqlite.rows == 1000  # records at or after NOW are not in it
    assert sqlite.start_ts == START


@pytest.mark.parametrize(
    ("model", "spec", "now"),
    [
        ("never-logged", TIME_WINDOW, NOW),
        ("never-logged", COUNT_WINDOW, NOW),
        ("reg", WindowSpec("1m", duration_s=60.0), START),  # before the first record
        ("reg", COUNT_WINDOW, START),
    ],
)
def test_a_window_without_records_is_an_empty_summary(
    stores: Stores, baselines: Baselines, model: str, spec: WindowSpec, now: float
) -> None:
    for reader in (stores.sqlite, stores.elasticsearch):
        summary = reader.read(model, spec, baselines.regression, now)
        assert summary.rows == 0
        assert summary.end_ts == now
        for column in summary.columns.values():
            assert column.total == 0
        assert summary.prediction is not None and summary.prediction.total == 0
        assert summary.row_sample.shape == (0, 3)
        assert summary.labelled.count == 0


def test_a_store_that_is_down_raises_store_unavailable(baselines: Baselines) -> None:
    reader = open_window_reader(f"http://127.0.0.1:{free_port()}", request_timeout_s=2.0)
    for spec in (TIME_WINDOW, COUNT_WINDOW):
        with pytest.raises(StoreUnavailable):
            reader.read("reg", spec, baselines.regression, NOW)
    reader.close()


def test_an_opensearch_cluster_read_with_the_elasticsearch_media_type_is_an_error(
    tmp_path: Path, baselines: Baselines
) -> None:
    """What `flavor: elasticsearch` does against OpenSearch (406 on every request with a
    body): each window an `error`, naming the refusal; `auto` reads it."""
    with engine_url("osmem", tmp_path) as url:
        forced = open_window_reader(url, flavor="elasticsearch")
        with pytest.raises(StoreUnavailable, match="406"):
            forced.read("reg", TIME_WINDOW, baselines.regression, NOW)
        forced.close()
        auto = open_window_reader(url, flavor="auto")
        assert auto.read("reg", TIME_WINDOW, baselines.regression, NOW).rows == 0
        auto.close()


def test_a_sqlite_file_the_sidecar_has_not_created_yet_is_an_empty_window(
    baselines: Baselines, tmp_path: Path
) -> None:
    missing = tmp_path / "not-yet.db"
    reader = open_window_reader(f"sqlite:///{missing}")
    for spec in (TIME_WINDOW, COUNT_WINDOW):
        summary = reader.read("reg", spec, baselines.regression, NOW)
        assert summary.rows == 0
        assert summary.end_ts == NOW
    reader.close()
    assert not missing.exists()  # the stats service never creates the sidecar's file


def test_sqlite_windows_are_read_while_the_sidecar_holds_the_write_lock(
    stores: Stores, baselines: Baselines
) -> None:
    with sqlite_locked(stores.sqlite_path):
        summary = stores.sqlite.read("reg", TIME_WINDOW, baselines.regression, NOW)
    assert summary.rows == 800


def test_a_window_spec_needs_exactly_one_size(stores: Stores, baselines: Baselines) -> None:
    for spec in (WindowSpec("none"), WindowSpec("both", duration_s=60.0, rows=10)):
        for reader in (stores.sqlite, stores.elasticsearch):
            with pytest.raises(ValueError, match="exactly one"):
                reader.read("reg", spec, baselines.regression, NOW)
