"""Window reads of the Elasticsearch input log, for the stats service.

Everything is computed by the cluster, so what crosses the network is bounded by the
number of bins, categories and sampled rows, never by the window's size:

- numeric features: one keyed `range` aggregation per feature on the baseline's bin
  edges (bins [edges[i], edges[i+1]), infinite ends left open, as in the baseline), and,
  given the baseline's minimum and maximum (`Bins`), two more ranges in the same
  aggregation: below the minimum, above the maximum (from the next double up: strictly
  above). Missing = the window's records minus those in the bins, as a record holds one
  value per feature: no `missing` aggregation (each aggregation is another pass over the
  window on engines such as noida-db);
- categorical features: `terms` (at most `max_categories`, the rest summed as `other`;
  exact with one shard, approximate like any terms aggregation across shards) and
  `missing`;
- the prediction, when asked: `prediction.value` like a numeric feature, or `terms` on
  `prediction.label`;
- a uniform random sample of rows, without replacement, for the exact two-sample tests:
  the rows with the smallest `sample_key` (a hash of the record id, see `elasticsearch`),
  fetched with only the sampled columns' values. Deterministic for a given window;
  independent of feature values, arrival order and shards. Chosen over `random_score`,
  which some Elasticsearch-compatible engines do not randomise, and over `sampler`
  aggregations, which return aggregates rather than rows;
- labelled rows, when asked: a second search for `exists: label` in the window, the rows
  with the smallest `sample_key` again (a uniform sample when there are more than a
  request may return), each with its label and prediction from `_source`. Not from the
  `label` keyword and `label.num` doc values: those index a posted "3" and 3, or "true"
  and true, alike, where `_source` keeps the JSON value as posted.

Windows are [start_ts, end_ts) in epoch seconds (either end may be infinite). Count
windows, "the newest n records before end_ts": `locate_newest` finds where they begin,
as (timestamp, sample_key) in the order newest first, ties on the millisecond broken by
sample_key, so that such a window holds exactly n records even when a request's rows
share one timestamp. Up to `max_result_window` records that is one sorted search
(`from` n - 1). Beyond, a descent: a histogram of about 1,000 buckets over the time span,
then over the bucket holding the n-th newest record, down to the millisecond (2 to 4
requests, each one pass over the records; a bisection with `count` takes about 30, and
a `range` aggregation of 1,000 parts costs 1,000 passes on noida-db), then the same over
sample_key among that millisecond's records if more than `max_result_window` of them
are needed. Records are visible after the index's refresh interval (5 s); records that
become visible between those requests may end up in the window too. No percentiles are
asked of the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError

from exporter.records import LabelValue
from exporter.store.elasticsearch.aggregations import (
    Bins,
    CategoryCounts,
    FloatArray,
    NumericCounts,
    Terms,
    as_bins,
    as_number,
    as_text,
    category_counts,
    empty,
    numeric_counts,
    sample_matrix,
    window_aggregations,
    window_query,
)
from exporter.store.elasticsearch.config import (
    ElasticsearchConfig,
    config_from_url,
    index_name,
    make_client,
)
from exporter.store.elasticsearch.errors import unavailable
from exporter.store.elasticsearch.locate import Search, WindowStart, locate_newest
from exporter.store.probabilities import probability_columns

# Elasticsearch serves at most this many hits per request (`index.max_result_window`).
MAX_SAMPLE_SIZE = 10_000
_NO_HITS: dict[str, Any] = {"hits": {"total": {"value": 0}, "hits": []}}


@dataclass(frozen=True)
class LabelledRows:
    """Records of the window with ground truth, the label as posted (a JSON string,
    number or boolean) and what the model predicted (NaN / None = nothing)."""

    label: tuple[LabelValue, ...] = ()
    prediction_value: FloatArray = field(default_factory=empty)
    prediction_label: tuple[str | None, ...] = ()
    prediction_score: FloatArray = field(default_factory=empty)
    total: int = 0  # labelled records in the window; at most `max_result_window` are here
    # Class -> each row's probability (NaN = not given); empty when no row has any.
    probabilities: Mapping[str, FloatArray] = field(default_factory=dict)
    # Seconds from the record's @timestamp to its label_timestamp, clipped at 0; NaN
    # where the record has no label_timestamp.
    delay: FloatArray = field(default_factory=empty)


@dataclass(frozen=True)
class PredictionSample:
    """What the model answered for the sampled records (NaN / None = nothing)."""

    value: FloatArray = field(default_factory=empty)
    label: tuple[str | None, ...] = ()
    score: FloatArray = field(default_factory=empty)
    probabilities: Mapping[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True)
class EsWindow:
    model: str
    start_ts: float
    end_ts: float
    rows: int
    numeric: Mapping[str, NumericCounts]
    categorical: Mapping[str, CategoryCounts]
    sample_columns: tuple[str, ...] = ()
    # One row per sampled record, one column per `sample_columns`; NaN where missing.
    sample: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    prediction: NumericCounts | CategoryCounts | None = None
    # prediction.value of the sampled records (NaN where none), when asked with `Bins`.
    prediction_sample: FloatArray = field(default_factory=empty)
    labelled: LabelledRows = field(default_factory=LabelledRows)
    # The sampled records' whole predictions, when asked (`sample_predictions`).
    predictions: PredictionSample | None = None

    def sample_of(self, name: str) -> FloatArray:
        """The sampled values of one numeric feature, missing ones left out."""
        column = self.sample[:, self.sample_columns.index(name)]
        return column[~np.isnan(column)]


class ElasticsearchReader:
    def __init__(
        self,
        config: ElasticsearchConfig,
        client: Elasticsearch | None = None,
        *,
        max_categories: int = 100,
        max_result_window: int = MAX_SAMPLE_SIZE,
    ) -> None:
        self.config = config
        self.max_categories = max_categories
        # The cluster's `index.max_result_window`: hits one search may return or skip.
        self.max_result_window = max_result_window
        self._client = client if client is not None else make_client(config)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchReader:
        return cls(config_from_url(url, **options))

    def count_window(
        self,
        model: str,
        start_ts: float,
        end_ts: float,
        *,
        role: str | None = None,
        candidate: str | None = None,
    ) -> int:
        """Records in the window; by default every one but the shadows'."""
        return self._count(model, window_query(start_ts, end_ts, role=role, candidate=candidate))

    def aggregate_window(
        self,
        model: str,
        start_ts: float,
        end_ts: float,
        numeric_edges: Mapping[str, Sequence[float] | Bins],
        categorical: Sequence[str],
        sample_size: int,
        *,
        prediction: Bins | Terms | None = None,
        sample_columns: Sequence[str] | None = None,
        labelled_rows: int = 0,
        start_key: float | None = None,
        max_categories: int | None = None,
        role: str | None = None,
        candidate: str | None = None,
        where: Mapping[str, Any] | None = None,
        sample_predictions: bool = False,
    ) -> EsWindow:
        """Counts of the window's records; `sample_size` rows of `sample_columns` (default:
        the numeric features); at most `labelled_rows` labelled records. With `start_key`
        (from `locate_newest`), records at exactly `start_ts` count only from that key.
        Every record but the shadows', unless a `role` or `candidate` is asked for
        (`aggregations.routed`); only those `where` (a query clause) matches, when given.
        With `sample_predictions`, the sampled records' whole predictions too."""
        bins = {name: as_bins(name, spec) for name, spec in numeric_edges.items()}
        numeric = list(bins)
        columns = tuple(numeric if sample_columns is None else sample_columns)
        sample_prediction = isinstance(prediction, Bins)
        wanted = bool(columns) or sample_prediction or sample_predictions
        size = min(max(sample_size, 0), self.max_result_window) if wanted else 0
        terms_size = self.max_categories if max_categories is None else max_categories
        query = window_query(start_ts, end_ts, start_key, role=role, candidate=candidate)
        if where is not None:
            query = {"bool": {"filter": [query, dict(where)]}}
        request: dict[str, Any] = {
            "query": query,
            "size": size,
            "track_total_hits": True,
            "aggregations": window_aggregations(bins, categorical, prediction, terms_size),
        }
        if size:
            request["sort"] = [{"sample_key": "asc"}]
            request["source_includes"] = [
                *(f"features.{name}" for name in columns),
                *(["prediction"] if sample_predictions else []),
                *(["prediction.value"] if sample_prediction and not sample_predictions else []),
            ]
        body = self._search(model, request) or _NO_HITS
        results: Mapping[str, Any] = body.get("aggregations", {})
        hits = body["hits"]["hits"]
        rows = int(body["hits"]["total"]["value"])
        counted: NumericCounts | CategoryCounts | None = None
        if isinstance(prediction, Bins):
            counted = numeric_counts(prediction, results, "p", rows)
        elif isinstance(prediction, Terms):
            counted = category_counts(results, "p")
        return EsWindow(
            model=model,
            start_ts=start_ts,
            end_ts=end_ts,
            rows=rows,
            numeric={
                name: numeric_counts(bins[name], results, f"n{position}", rows)
                for position, name in enumerate(numeric)
            },
            categorical={
                name: category_counts(results, f"c{position}")
                for position, name in enumerate(categorical)
            },
            sample_columns=columns if size else (),
            sample=sample_matrix(hits, columns) if size else np.empty((0, 0)),
            prediction=counted,
            prediction_sample=(
                sample_matrix(hits, [("prediction", "value")])[:, 0]
                if sample_prediction
                else empty()
            ),
            labelled=self._labelled(model, query, labelled_rows)
            if labelled_rows > 0
            else LabelledRows(),
            predictions=_prediction_sample(hits) if size and sample_predictions else None,
        )

    def locate_newest(
        self,
        model: str,
        rows: int,
        end_ts: float,
        *,
        role: str | None = None,
        candidate: str | None = None,
    ) -> WindowStart:
        """Where the model's newest `rows` records with a timestamp before `end_ts` begin
        (see the module's documentation); a model without records starts at `end_ts`.
        Records selected as `aggregate_window` selects them."""
        search: Search = lambda request: self._search(model, request)  # noqa: E731
        return locate_newest(
            search, model, rows, end_ts, self.max_result_window, role=role, candidate=candidate
        )

    def close(self) -> None:
        self._client.close()

    def _labelled(self, model: str, window: dict[str, Any], limit: int) -> LabelledRows:
        request = {
            "query": {"bool": {"filter": [window, {"exists": {"field": "label"}}]}},
            "size": min(limit, self.max_result_window),
            "track_total_hits": True,
            "sort": [{"sample_key": "asc"}],
            "source_includes": ["label", "prediction", "@timestamp", "label_timestamp"],
        }
        body = self._search(model, request) or _NO_HITS
        sources = [hit.get("_source", {}) for hit in body["hits"]["hits"]]
        predicted = _prediction_sample(body["hits"]["hits"])
        arrived = np.array([as_number(s.get("label_timestamp")) for s in sources])
        logged = np.array([as_number(s.get("@timestamp")) for s in sources])
        with np.errstate(invalid="ignore"):  # NaN (unknown) stays NaN
            delay = np.maximum((arrived - logged) / 1000.0, 0.0) if sources else empty()
        return LabelledRows(
            label=tuple(source["label"] for source in sources),
            prediction_value=predicted.value,
            prediction_label=predicted.label,
            prediction_score=predicted.score,
            total=int(body["hits"]["total"]["value"]),
            probabilities=predicted.probabilities,
            delay=delay,
        )

    def _search(self, model: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The response body; None when the model has no index (nothing logged yet)."""
        with unavailable(f"reading a window of {model}"):
            try:
                response = self._client.search(
                    index=index_name(self.config.index_prefix, model), **request
                )
            except NotFoundError:
                return None
        return dict(response.body)

    def _count(self, model: str, query: dict[str, Any]) -> int:
        with unavailable(f"counting {model}"):
            try:
                response = self._client.count(
                    index=index_name(self.config.index_prefix, model), query=query
                )
            except NotFoundError:
                return 0  # nothing logged for this model yet
        return int(response.body["count"])


def _prediction_sample(hits: Sequence[Mapping[str, Any]]) -> PredictionSample:
    predictions = [(hit.get("_source", {}).get("prediction") or {}) for hit in hits]
    given = [i for i, p in enumerate(predictions) if isinstance(p.get("probabilities"), dict)]
    return PredictionSample(
        value=np.array([as_number(p.get("value")) for p in predictions]),
        label=tuple(as_text(p.get("label")) for p in predictions),
        score=np.array([as_number(p.get("score")) for p in predictions]),
        probabilities=probability_columns(
            [predictions[i]["probabilities"] for i in given], given, len(predictions)
        ),
    )
