"""Windows of the Elasticsearch input log: counted in the cluster, whatever their size.

One search aggregates every baseline feature, the prediction column and a row sample
(`ElasticsearchReader.aggregate_window`); a second fetches at most 10,000 labelled rows.
A count window first locates where its newest rows begin (`locate_newest`: one sorted
search up to 10,000 rows, a bisection with `count` beyond), then aggregates from there.
What crosses the network is bounded by bins, categories and the sample caps; memory does
not grow with the window. Each segment (`windows.segments`: at most K + 1 per `segment:
true` feature, chosen from the window's own category counts) is the same two searches
filtered to its records, so a window costs 2 (K + 1) more requests per segment feature.

Samples: the row sample is the window's ROW_SAMPLE_CAP records with the smallest
sample_key (a uniform sample, see `elasticsearch.read`); each numeric feature's sample
is that sample's values of the feature, so at most ROW_SAMPLE_CAP values, where SQLite
gives up to `summary.SAMPLE_CAP`. Labelled rows: at most 10,000 (a uniform sample of
them when there are more), where SQLite gives them all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from exporter.store.elasticsearch.aggregations import Bins, CategoryCounts, NumericCounts, Terms
from exporter.store.elasticsearch.read import MAX_SAMPLE_SIZE, ElasticsearchReader, EsWindow
from stats_service.baseline.contents import (
    Baseline,
    CategoricalFeatureBaseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.settings import WindowSpec
from stats_service.windows.segments import query_clauses, segment_features
from stats_service.windows.spec import ROW_SAMPLE_CAP, check_spec, decode_label
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    FloatArray,
    Labelled,
    NumericSummary,
    PredictionRows,
    WindowSummary,
)


class ElasticsearchWindowReader:
    """WindowReader on the sidecar's Elasticsearch indices."""

    def __init__(self, reader: ElasticsearchReader, *, row_sample_cap: int = ROW_SAMPLE_CAP):
        self.reader = reader
        self.row_sample_cap = row_sample_cap

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchWindowReader:
        """`options`: ElasticsearchConfig fields, as the sidecar's settings give them."""
        return cls(ElasticsearchReader.from_url(url, **options))

    def read(self, model: str, spec: WindowSpec, baseline: Baseline, now: float) -> WindowSummary:
        check_spec(spec)
        start_key = None
        if spec.rows is not None:
            located = self.reader.locate_newest(model, spec.rows, now)
            start, start_key = located.start_ts, located.start_key
        else:
            start = now - (spec.duration_s or 0.0)
        numeric = [f for f in baseline.features if isinstance(f, NumericFeatureBaseline)]
        categorical = [f for f in baseline.features if isinstance(f, CategoricalFeatureBaseline)]
        prediction = baseline.prediction
        vocabularies = [len(f.categories) for f in categorical]
        if isinstance(prediction, CategoricalFeatureBaseline):
            vocabularies.append(len(prediction.categories))
        row_columns = baseline.row_sample.columns

        def aggregate(where: dict[str, Any] | None = None) -> WindowSummary:
            window = self.reader.aggregate_window(
                model,
                start,
                now,
                {feature.name: _bins(feature) for feature in numeric},
                [feature.name for feature in categorical],
                self.row_sample_cap,
                prediction=None if prediction is None else _prediction(prediction),
                # The row sample's columns first, then any other numeric feature's.
                sample_columns=[
                    *row_columns,
                    *(f.name for f in numeric if f.name not in row_columns),
                ],
                labelled_rows=MAX_SAMPLE_SIZE,
                start_key=start_key,
                # Room for the whole vocabulary and as many unseen values as the default.
                max_categories=self.reader.max_categories + max(vocabularies, default=0),
                where=where,
                # What estimating performance without labels reads (as from SQLite).
                sample_predictions=True,
            )
            return _summary(window, baseline, spec.name, len(row_columns))

        summary = aggregate()
        return dataclasses.replace(
            summary,
            segments={
                feature: {
                    value: aggregate(clause)
                    for value, clause in _segment_clauses(summary, feature).items()
                }
                for feature in segment_features(baseline)
            },
        )

    def close(self) -> None:
        self.reader.close()


def _segment_clauses(summary: WindowSummary, feature: str) -> dict[str, dict[str, Any]]:
    column = summary.columns.get(feature)
    if not isinstance(column, CategoricalSummary) or summary.rows == 0:
        return {}
    return query_clauses(column.counts, summary.rows, f"features.{feature}")


def _bins(feature: NumericFeatureBaseline) -> Bins:
    return Bins(feature.edges, feature.minimum, feature.maximum)


def _prediction(feature: FeatureBaseline) -> Bins | Terms:
    return _bins(feature) if isinstance(feature, NumericFeatureBaseline) else Terms()


def _summary(window: EsWindow, baseline: Baseline, name: str, row_width: int) -> WindowSummary:
    columns: dict[str, ColumnSummary] = {}
    for feature in baseline.features:
        if isinstance(feature, NumericFeatureBaseline):
            sampled = feature.name in window.sample_columns
            sample = window.sample_of(feature.name) if sampled else _no_values()
            columns[feature.name] = _numeric(window.numeric[feature.name], sample)
        else:
            columns[feature.name] = _categorical(window.categorical[feature.name])
    prediction: ColumnSummary | None = None
    if isinstance(window.prediction, NumericCounts):
        values = window.prediction_sample
        prediction = _numeric(window.prediction, values[~np.isnan(values)])
    elif isinstance(window.prediction, CategoryCounts):
        prediction = _categorical(window.prediction)
    labelled = window.labelled
    return WindowSummary(
        model=window.model,
        window=name,
        start_ts=window.start_ts,
        end_ts=window.end_ts,
        rows=window.rows,
        columns=columns,
        prediction=prediction,
        row_sample=np.ascontiguousarray(window.sample[:, :row_width])
        if window.sample.shape[0]
        else np.empty((0, row_width)),
        labelled=Labelled(
            truth=tuple(map(decode_label, labelled.label)),
            predicted_value=labelled.prediction_value,
            predicted_label=labelled.prediction_label,
            score=labelled.prediction_score,
            probabilities=labelled.probabilities,
            delay=labelled.delay,
        ),
        predictions=_predictions(window),
        # The same records as the row sample, in its order: direct-loss estimates.
        row_predictions=window.predictions.value[: window.sample.shape[0]]
        if window.predictions is not None
        else np.empty(0),
    )


def _predictions(window: EsWindow) -> PredictionRows:
    """The sampled records' predictions (a uniform sample, by sample_key), standing for
    the window's `rows` as SQLite's capped sample does."""
    sample = window.predictions
    if sample is None:
        return PredictionRows()
    return PredictionRows(
        rows=window.rows,
        value=sample.value,
        label=sample.label,
        score=sample.score,
        probabilities=sample.probabilities,
    )


def _numeric(counts: NumericCounts, sample: FloatArray) -> NumericSummary:
    return NumericSummary(
        counts=counts.counts,
        missing=counts.missing,
        below_minimum=counts.below_minimum,
        above_maximum=counts.above_maximum,
        sample=sample,
    )


def _categorical(counts: CategoryCounts) -> CategoricalSummary:
    return CategoricalSummary(
        counts=dict(counts.counts), missing=counts.missing, other=counts.other
    )


def _no_values() -> FloatArray:
    return np.empty(0, dtype=np.float64)
