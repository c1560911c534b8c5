"""Window reads pushed down to Elasticsearch, checked against numpy on the same data."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from scipy import stats

from exporter.records import FeatureValue, LabelValue, LogRecord, PredictionValue, StoreColumns
from exporter.store.elasticsearch.aggregations import Bins, CategoryCounts, NumericCounts, Terms
from exporter.store.elasticsearch.locate import WindowStart
from exporter.store.elasticsearch.log import ElasticsearchLog, sample_key
from exporter.store.elasticsearch.read import ElasticsearchReader

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


TIES = 40  # records per timestamp, as when one request carries many rows
PREDICTED = ["yes", "no", None]
POSTED: list[LabelValue] = ["cat", 3, 2.5, True, "3"]


def predicted_record(i: int) -> LogRecord:
    """Rows of request i // TIES share its timestamp; a prediction on most, a label on
    every third, posted as a string, a number or a boolean."""
    return LogRecord(
        id=f"p-{i}:0",
        timestamp=START + (i // TIES) * 0.5,
        request_id=f"p-{i}",
        row=0,
        model="scored",
        model_version="1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"x": float(i % 9) - 2.0},
        prediction=None
        if i % 10 == 0
        else PredictionValue(value=i / 100, label=PREDICTED[i % 3], score=0.25),
        label=POSTED[i % len(POSTED)] if i % 3 == 0 else None,
    )


@pytest.fixture
def scored(log: ElasticsearchLog, client: Elasticsearch) -> list[LogRecord]:
    records = [predicted_record(i) for i in range(TIES * 10)]
    log.prepare(StoreColumns("scored", numeric=("x",)))
    log.write(records)
    client.indices.refresh(index=log.index_for("scored"))
    return records


def test_out_of_range_prediction_and_labelled_rows_are_counted_in_the_cluster(
    scored: list[LogRecord], reader: ElasticsearchReader
) -> None:
    end = START + 1000
    bins = Bins((-INF, 0.0, 3.0, INF), minimum=0.0, maximum=5.0)
    numeric = reader.aggregate_window(
        "scored",
        START,
        end,
        {"x": bins},
        [],
        50,
        prediction=Bins((-INF, 1.0, INF), minimum=0.5, maximum=3.0),
        labelled_rows=1000,
    )
    xs = np.array([r.features["x"] for r in scored], dtype=float)
    assert numeric.numeric["x"].counts == expected_bins(xs.tolist(), list(bins.edges))
    # Strictly outside: the values equal to the minimum or maximum are in range.
    assert numeric.numeric["x"].below_minimum == np.count_nonzero(xs < 0) > 0
    assert numeric.numeric["x"].above_maximum == np.count_nonzero(xs > 5) > 0
    values = [r.prediction.value for r in scored if r.prediction and r.prediction.value is not None]
    prediction = numeric.prediction
    assert isinstance(prediction, NumericCounts)
    assert prediction.counts == expected_bins(values, [-INF, 1.0, INF])
    assert prediction.missing == sum(r.prediction is None for r in scored)
    assert prediction.below_minimum == sum(v < 0.5 for v in values)
    assert prediction.above_maximum == sum(v > 3.0 for v in values)
    sampled = numeric.prediction_sample
    assert len(sampled) == 50
    assert set(sampled[~np.isnan(sampled)].tolist()) <= set(values)

    labelled = numeric.labelled
    expected = [r for r in scored if r.label is not None]
    assert labelled.total == len(labelled.label) == len(expected)
    # As posted: a text "3" is not the number 3, a boolean is not 1.
    assert Counter(map(repr, labelled.label)) == Counter(repr(r.label) for r in expected)
    assert Counter(labelled.prediction_label) == Counter(
        r.prediction.label if r.prediction else None for r in expected
    )
    assert np.isnan(labelled.prediction_value).sum() == sum(r.prediction is None for r in expected)
    assert set(labelled.prediction_score[~np.isnan(labelled.prediction_score)]) == {0.25}
    few = reader.aggregate_window("scored", START, end, {}, [], 0, labelled_rows=7).labelled
    assert (len(few.label), few.total) == (7, len(expected))

    labels = reader.aggregate_window("scored", START, end, {}, [], 0, prediction=Terms())
    assert isinstance(labels.prediction, CategoryCounts)
    assert dict(labels.prediction.counts) == Counter(
        r.prediction.label for r in scored if r.prediction and r.prediction.label
    )
    assert labels.prediction.missing == sum(
        not (r.prediction and r.prediction.label) for r in scored
    )


@pytest.mark.parametrize("max_result_window", [10_000, 7], ids=["sorted", "bisection"])
@pytest.mark.parametrize("rows", [1, 25, TIES, 130, TIES * 9 - 1])
def test_count_windows_hold_exactly_the_newest_rows_even_across_tied_timestamps(
    scored: list[LogRecord], reader: ElasticsearchReader, max_result_window: int, rows: int
) -> None:
    reader.max_result_window = max_result_window  # 7: bisection, also among tied rows
    end = START + 4.5  # before the last request's rows: they are not in any window
    before_end = [r for r in scored if r.timestamp < end]
    start = reader.locate_newest("scored", rows, end)
    assert start.rows == rows
    newest = sorted(before_end, key=lambda r: (r.timestamp, sample_key(r.id)))[-rows:]
    assert start.start_ts == newest[0].timestamp
    reader.max_result_window = 10_000  # to sample the whole window
    window = reader.aggregate_window(
        "scored", start.start_ts, end, {"x": [-INF, INF]}, [], 1000, start_key=start.start_key
    )
    assert window.rows == rows
    xs = np.array([r.features["x"] for r in newest], dtype=float)
    assert sorted(window.sample_of("x").tolist()) == sorted(xs.tolist())


def test_a_count_window_longer_than_the_log_starts_at_its_first_record(
    scored: list[LogRecord], reader: ElasticsearchReader
) -> None:
    end = START + 4.5
    start = reader.locate_newest("scored", 10_000_000, end)
    assert (start.start_ts, start.start_key, start.rows) == (START, None, TIES * 9)
    assert reader.locate_newest("scored", 5, START) == WindowStart(START, None, 0)
    assert reader.locate_newest("never-seen", 5, end) == WindowStart(end, None, 0)
