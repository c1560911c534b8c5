"""Window reads pushed down to Elasticsearch, checked against numpy on the same data."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from scipy import stats

from exporter.store.base import FeatureValue, LogRecord, StoreColumns
from exporter.store.elasticsearch import ElasticsearchLog
from exporter.store.elasticsearch_read import ElasticsearchReader

START = float(int(time.time()) - 3600)
END = START + 1000.0
ROWS = 3000
INF = float("inf")
X_EDGES = [-INF, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, INF]
Y_EDGES = [-INF, 0.2, 1.0, 3.0, INF]


@dataclass(frozen=True)
class Rows:
    x: list[float]
    y: list[float | None]
    colour: list[str | None]
    city: list[str]

    def features(self, i: int) -> dict[str, FeatureValue]:
        return {"x": self.x[i], "y": self.y[i], "colour": self.colour[i], "city": self.city[i]}


def window_rows() -> Rows:
    rng = np.random.default_rng(7)
    # x drifts with the row number, so a sample biased to early or late rows would show.
    x = np.round(rng.normal(size=ROWS) + np.linspace(-1, 1, ROWS), 1)  # ties on the edges
    y = rng.exponential(size=ROWS)
    colours = rng.choice(["red", "green", "blue", "white", "black"], size=ROWS)
    return Rows(
        x=x.tolist(),
        y=[None if i % 10 == 0 else float(y[i]) for i in range(ROWS)],
        colour=[None if i % 20 == 0 else str(colours[i]) for i in range(ROWS)],
        city=[f"city-{i % 150}" for i in range(ROWS)],
    )


def record(i: int, ts: float, features: dict[str, FeatureValue]) -> LogRecord:
    return LogRecord(
        id=f"w-{i}:0",
        timestamp=ts,
        request_id=f"w-{i}",
        row=0,
        model="credit",
        model_version="1",
        protocol="v2",
        status=200,
        latency_ms=2.0,
        features=features,
    )


def expected_bins(values: list[float], edges: list[float]) -> tuple[int, ...]:
    which = np.searchsorted(np.array(edges), np.array(values), side="right") - 1
    return tuple(np.bincount(which, minlength=len(edges) - 1).tolist())


@pytest.fixture
def written(log: ElasticsearchLog, client: Elasticsearch) -> Rows:
    rows = window_rows()
    log.prepare(StoreColumns("credit", numeric=("x", "y"), categorical=("colour", "city")))
    step = (END - START) / ROWS
    inside = [record(i, START + i * step, rows.features(i)) for i in range(ROWS)]
    outside = [
        record(ROWS + i, ts, {"x": 100.0, "y": 100.0, "colour": "outside", "city": "outside"})
        for i, ts in enumerate([START - 1, START - 0.001, END, END + 60] * 50)
    ]
    log.write(inside + outside)
    client.indices.refresh(index=log.index_for("credit"))
    return rows


def test_window_aggregations_equal_numpy_on_the_same_data(
    written: Rows, reader: ElasticsearchReader
) -> None:
    reader.max_categories = 100
    window = reader.aggregate_window(
        "credit", START, END, {"x": X_EDGES, "y": Y_EDGES}, ["colour", "city"], sample_size=400
    )
    assert window.rows == ROWS == reader.count_window("credit", START, END)
    xs = written.x
    ys = [y for y in written.y if y is not None]
    assert window.numeric["x"].counts == expected_bins(xs, X_EDGES)
    assert window.numeric["x"].missing == 0
    assert window.numeric["y"].counts == expected_bins(ys, Y_EDGES)
    assert window.numeric["y"].missing == ROWS // 10

    colours = Counter(colour for colour in written.colour if colour is not None)
    assert dict(window.categorical["colour"].counts) == colours
    assert window.categorical["colour"].missing == ROWS // 20
    assert window.categorical["colour"].other == 0
    cities = window.categorical["city"]
    assert len(cities.counts) == 100  # bounded by max_categories; the rest summed
    assert sum(cities.counts.values()) + cities.other == ROWS

    assert window.sample.shape == (400, 2)
    assert window.sample_columns == ("x", "y")
    sample_x = window.sample_of("x")
    assert set(sample_x.tolist()) <= set(xs)
    assert len(window.sample_of("y")) < 400  # missing values left out
    # Uniform over the window: the sample's x matches the whole window's x.
    assert stats.ks_2samp(sample_x, xs).pvalue > 0.01


def test_a_sample_larger_than_the_window_is_the_window(
    written: Rows, reader: ElasticsearchReader
) -> None:
    window = reader.aggregate_window("credit", START, START + 10, {"x": X_EDGES}, [], 1000)
    assert window.rows == 30
    assert window.sample.shape == (30, 1)
    assert sorted(window.sample_of("x").tolist()) == sorted(written.x[:30])


def test_empty_windows_and_unknown_models_read_as_zeros(
    written: Rows, reader: ElasticsearchReader
) -> None:
    for model, start in [("credit", END + 3600), ("never-seen", START)]:
        window = reader.aggregate_window(model, start, start + 60, {"x": X_EDGES}, ["colour"], 50)
        assert window.rows == 0
        assert window.numeric["x"].counts == (0,) * (len(X_EDGES) - 1)
        assert dict(window.categorical["colour"].counts) == {}
        assert window.sample.shape == (0, 1)
        assert reader.count_window(model, start, start + 60) == 0
