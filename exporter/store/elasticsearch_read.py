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

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from exporter.store.base import LabelValue, StoreUnavailable
from exporter.store.elasticsearch_config import (
    ElasticsearchConfig,
    config_from_url,
    epoch_millis,
    index_name,
    make_client,
)

FloatArray = npt.NDArray[np.float64]
# Elasticsearch serves at most this many hits per request (`index.max_result_window`).
MAX_SAMPLE_SIZE = 10_000
# sample_key values are multiples of 2**-53 (see `elasticsearch.sample_key`).
_KEY_STEPS = 1 << 53
# Buckets of a histogram per request while locating a count window's start.
_SPLITS = 1000
_NO_HITS: dict[str, Any] = {"hits": {"total": {"value": 0}, "hits": []}}


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class Bins:
    """A numeric column to count: bins on `edges`, and the values strictly below
    `minimum` and above `maximum` (not counted when either is None)."""

    edges: tuple[float, ...]
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Terms:
    """A keyword column to count value by value (the prediction's label)."""


@dataclass(frozen=True)
class NumericCounts:
    edges: tuple[float, ...]  # as given, usually -inf first and +inf last
    counts: tuple[int, ...]  # len(edges) - 1 bins: values v with edges[i] <= v < edges[i+1]
    missing: int
    below_minimum: int = 0  # asked with `Bins` only
    above_maximum: int = 0


@dataclass(frozen=True)
class CategoryCounts:
    counts: Mapping[str, int]  # the most frequent categories, at most `max_categories`
    other: int  # rows with a value outside `counts`
    missing: int


@dataclass(frozen=True)
class LabelledRows:
    """Records of the window with ground truth, the label as posted (a JSON string,
    number or boolean) and what the model predicted (NaN / None = nothing)."""

    label: tuple[LabelValue, ...] = ()
    prediction_value: FloatArray = field(default_factory=_empty)
    prediction_label: tuple[str | None, ...] = ()
    prediction_score: FloatArray = field(default_factory=_empty)
    total: int = 0  # labelled records in the window; at most `max_result_window` are here


@dataclass(frozen=True)
class WindowStart:
    """Where a model's newest records before some end begin: the records after
    `start_ts`, and those at `start_ts` with sample_key >= `start_key` (all of them when
    it is None). `rows` records in all, fewer than asked when the model has fewer."""

    start_ts: float
    start_key: float | None
    rows: int


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
    prediction_sample: FloatArray = field(default_factory=_empty)
    labelled: LabelledRows = field(default_factory=LabelledRows)

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

    def count_window(self, model: str, start_ts: float, end_ts: float) -> int:
        return self._count(model, _window(start_ts, end_ts))

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
    ) -> EsWindow:
        """Counts of the window's records; `sample_size` rows of `sample_columns` (default:
        the numeric features); at most `labelled_rows` labelled records. With `start_key`
        (from `locate_newest`), records at exactly `start_ts` count only from that key."""
        bins = {name: _bins(name, spec) for name, spec in numeric_edges.items()}
        numeric = list(bins)
        columns = tuple(numeric if sample_columns is None else sample_columns)
        sample_prediction = isinstance(prediction, Bins)
        wanted = bool(columns) or sample_prediction
        size = min(max(sample_size, 0), self.max_result_window) if wanted else 0
        terms_size = self.max_categories if max_categories is None else max_categories
        aggregations: dict[str, Any] = {}
        for position, name in enumerate(numeric):
            aggregations[f"n{position}"] = _range_aggregation(f"features.{name}", bins[name])
        for position, name in enumerate(categorical):
            aggregations.update(_terms_aggregations(f"c{position}", f"features.{name}", terms_size))
        if isinstance(prediction, Bins):
            aggregations["p"] = _range_aggregation("prediction.value", prediction)
        elif isinstance(prediction, Terms):
            aggregations.update(_terms_aggregations("p", "prediction.label", terms_size))
        query = _window(start_ts, end_ts, start_key)
        request: dict[str, Any] = {
            "query": query,
            "size": size,
            "track_total_hits": True,
            "aggregations": aggregations,
        }
        if size:
            request["sort"] = [{"sample_key": "asc"}]
            request["source_includes"] = [
                *(f"features.{name}" for name in columns),
                *(["prediction.value"] if sample_prediction else []),
            ]
        body = self._search(model, request) or _NO_HITS
        results: Mapping[str, Any] = body.get("aggregations", {})
        hits = body["hits"]["hits"]
        rows = int(body["hits"]["total"]["value"])
        counted: NumericCounts | CategoryCounts | None = None
        if isinstance(prediction, Bins):
            counted = _numeric(prediction, results, "p", rows)
        elif isinstance(prediction, Terms):
            counted = _categorical(results, "p")
        return EsWindow(
            model=model,
            start_ts=start_ts,
            end_ts=end_ts,
            rows=rows,
            numeric={
                name: _numeric(bins[name], results, f"n{position}", rows)
                for position, name in enumerate(numeric)
            },
            categorical={
                name: _categorical(results, f"c{position}")
                for position, name in enumerate(categorical)
            },
            sample_columns=columns if size else (),
            sample=_sample(hits, columns) if size else np.empty((0, 0)),
            prediction=counted,
            prediction_sample=(
                _sample(hits, [("prediction", "value")])[:, 0] if sample_prediction else _empty()
            ),
            labelled=self._labelled(model, query, labelled_rows)
            if labelled_rows > 0
            else LabelledRows(),
        )

    def locate_newest(self, model: str, rows: int, end_ts: float) -> WindowStart:
        """Where the model's newest `rows` records with a timestamp before `end_ts` begin
        (see the module's documentation); a model without records starts at `end_ts`."""
        if rows < 1:
            raise ValueError(f"rows: expected at least 1, got {rows}")
        before_end = _window(-math.inf, end_ts)
        request = {
            "query": before_end,
            "size": 0,
            "track_total_hits": True,
            "aggregations": {"first": {"min": {"field": "@timestamp"}}},
        }
        body = self._search(model, request)
        total = int(body["hits"]["total"]["value"]) if body else 0
        if not body or total == 0:
            return WindowStart(end_ts, None, 0)
        first_ms = round(body["aggregations"]["first"]["value"])
        if total <= rows:
            return WindowStart(first_ms / 1000, None, total)
        if rows <= self.max_result_window:
            ms, key = self._nth(model, before_end, rows)
            return WindowStart(ms / 1000, key, rows)

        # count from first_ms on = total >= rows; from the end on: none.
        ms, above = self._descend(
            model, before_end, "@timestamp", 1, first_ms, epoch_millis(end_ts), rows
        )
        need = rows - above  # of the records at exactly `ms`
        at_ms = {"bool": {"filter": [{"term": {"@timestamp": ms}}]}}
        if need <= self.max_result_window:
            key = self._nth(model, at_ms, need)[1]
        else:
            step, _ = self._descend(model, at_ms, "sample_key", _KEY_STEPS, 0, _KEY_STEPS, need)
            key = step / _KEY_STEPS
        return WindowStart(ms / 1000, key, rows)

    def close(self) -> None:
        self._client.close()

    def _descend(
        self,
        model: str,
        query: dict[str, Any],
        field: str,
        scale: int,
        low: int,
        high: int,
        rows: int,
    ) -> tuple[int, int]:
        """The largest t in [low, high) with at least `rows` of the records of `query`
        having field >= t / scale (none from high / scale on), and how many have
        field >= (t + 1) / scale. One histogram per step, of about _SPLITS buckets: a
        pass over the records whatever their number (a range aggregation of as many
        parts costs a pass per part on some engines). Power-of-two intervals keep the
        histogram's bucket keys exact for sample_key."""
        above = 0  # records from `high` on
        while high - low > 1:
            interval = 1 << max(0, math.ceil((high - low) / _SPLITS) - 1).bit_length()
            within = {"range": {field: {"gte": _scaled(low, scale), "lt": _scaled(high, scale)}}}
            histogram: dict[str, Any] = {"field": field, "min_doc_count": 1}
            if field == "@timestamp":
                split = {"date_histogram": {**histogram, "fixed_interval": f"{interval}ms"}}
            else:
                split = {"histogram": {**histogram, "interval": interval / scale}}
            request = {
                "query": {"bool": {"filter": [query, within]}},
                "size": 0,
                "aggregations": {"split": split},
            }
            body = self._search(model, request) or {}
            buckets = body.get("aggregations", {}).get("split", {}).get("buckets", [])
            counts = {round(bucket["key"] * scale): int(bucket["doc_count"]) for bucket in buckets}
            for start in sorted(counts, reverse=True):
                if above + counts[start] >= rows:
                    low, high = max(low, start), min(high, start + interval)
                    break
                above += counts[start]
            else:  # fewer records than counted a moment ago: purged, or the index deleted
                raise StoreUnavailable(f"elasticsearch: {model}: records vanished during a read")
        return low, above

    def _nth(self, model: str, query: dict[str, Any], n: int) -> tuple[int, float]:
        """(@timestamp in ms, sample_key) of the n-th newest record (ties: key descending)."""
        body = self._search(
            model,
            {
                "query": query,
                "size": 1,
                "from_": n - 1,
                "sort": [{"@timestamp": "desc"}, {"sample_key": "desc"}],
                "source": False,
            },
        )
        hits = body["hits"]["hits"] if body else []
        if not hits:  # the index went away, or was purged, between requests
            raise StoreUnavailable(f"elasticsearch: {model}: records vanished during a read")
        ms, key = hits[0]["sort"][-2:]
        return round(ms), float(key)

    def _labelled(self, model: str, window: dict[str, Any], limit: int) -> LabelledRows:
        request = {
            "query": {"bool": {"filter": [window, {"exists": {"field": "label"}}]}},
            "size": min(limit, self.max_result_window),
            "track_total_hits": True,
            "sort": [{"sample_key": "asc"}],
            "source_includes": ["label", "prediction"],
        }
        body = self._search(model, request) or _NO_HITS
        sources = [hit.get("_source", {}) for hit in body["hits"]["hits"]]
        predictions = [source.get("prediction") or {} for source in sources]
        return LabelledRows(
            label=tuple(source["label"] for source in sources),
            prediction_value=np.array([_number(p.get("value")) for p in predictions]),
            prediction_label=tuple(_text(p.get("label")) for p in predictions),
            prediction_score=np.array([_number(p.get("score")) for p in predictions]),
            total=int(body["hits"]["total"]["value"]),
        )

    def _search(self, model: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The response body; None when the model has no index (nothing logged yet)."""
        try:
            response = self._client.search(
                index=index_name(self.config.index_prefix, model), **request
            )
        except NotFoundError:
            return None
        except (ApiError, TransportError) as exc:
            raise StoreUnavailable(f"elasticsearch: reading a window of {model}: {exc}") from exc
        return dict(response.body)

    def _count(self, model: str, query: dict[str, Any]) -> int:
        try:
            response = self._client.count(
                index=index_name(self.config.index_prefix, model), query=query
            )
        except NotFoundError:
            return 0  # nothing logged for this model yet
        except (ApiError, TransportError) as exc:
            raise StoreUnavailable(f"elasticsearch: counting {model}: {exc}") from exc
        return int(response.body["count"])


def _bins(name: str, spec: Sequence[float] | Bins) -> Bins:
    bins = spec if isinstance(spec, Bins) else Bins(tuple(float(edge) for edge in spec))
    if len(bins.edges) < 2:
        raise ValueError(f"numeric_edges[{name!r}]: expected at least 2 edges")
    return bins


def _window(start_ts: float, end_ts: float, start_key: float | None = None) -> dict[str, Any]:
    if start_key is None:
        return {"bool": {"filter": [_dated(start_ts, end_ts)]}}
    start = epoch_millis(start_ts)
    at_start = {
        "bool": {
            "filter": [
                {"term": {"@timestamp": start}},
                {"range": {"sample_key": {"gte": start_key}}},
            ]
        }
    }
    after_start = {"range": {"@timestamp": {"gt": start}}}
    return {
        "bool": {
            "filter": [
                _dated(-math.inf, end_ts),
                {"bool": {"should": [after_start, at_start], "minimum_should_match": 1}},
            ]
        }
    }


def _dated(start_ts: float, end_ts: float) -> dict[str, Any]:
    """Records in [start_ts, end_ts); either way, only records: label-only documents have
    no @timestamp."""
    bounds: dict[str, int] = {}
    if start_ts > -math.inf:
        bounds["gte"] = epoch_millis(start_ts)
    if end_ts < math.inf:
        bounds["lt"] = epoch_millis(end_ts)
    return {"range": {"@timestamp": bounds}} if bounds else {"exists": {"field": "@timestamp"}}


def _scaled(value: int, scale: int) -> float | int:
    return value if scale == 1 else value / scale  # epoch milliseconds stay integers


def _range_aggregation(path: str, bins: Bins) -> dict[str, Any]:
    """Keyed: engines return ranges sorted by their bounds, and the out-of-range ones
    overlap the bins."""
    ranges: list[dict[str, Any]] = [
        {"key": f"b{i}", **bounds} for i, bounds in enumerate(_ranges(bins.edges))
    ]
    if bins.minimum is not None and bins.maximum is not None:
        above = math.nextafter(bins.maximum, math.inf)  # "from" is inclusive: v > maximum
        if math.isfinite(bins.minimum):
            ranges.append({"key": "below", "to": bins.minimum})
        if math.isfinite(above):
            ranges.append({"key": "above", "from": above})
    return {"range": {"field": path, "keyed": True, "ranges": ranges}}


def _terms_aggregations(key: str, path: str, size: int) -> dict[str, Any]:
    return {
        key: {"terms": {"field": path, "size": size}},
        f"{key}_missing": {"missing": {"field": path}},
    }


def _ranges(edges: Sequence[float]) -> list[dict[str, float]]:
    """One range per bin; an infinite end is left out: JSON has no infinity."""
    ranges: list[dict[str, float]] = []
    for low, high in itertools.pairwise(edges):
        bucket: dict[str, float] = {}
        if math.isfinite(low):
            bucket["from"] = float(low)
        if math.isfinite(high):
            bucket["to"] = float(high)
        ranges.append(bucket)
    return ranges


def _numeric(bins: Bins, results: Mapping[str, Any], key: str, rows: int) -> NumericCounts:
    counts = _keyed_counts(results.get(key, {}))
    in_bins = tuple(counts.get(f"b{i}", 0) for i in range(len(bins.edges) - 1))
    return NumericCounts(
        edges=bins.edges,
        counts=in_bins,
        missing=rows - sum(in_bins),
        below_minimum=counts.get("below", 0),
        above_maximum=counts.get("above", 0),
    )


def _keyed_counts(aggregation: Mapping[str, Any]) -> dict[str, int]:
    """doc_count by key of a keyed range aggregation (as a list, should an engine ignore
    `keyed`)."""
    buckets = aggregation.get("buckets", {})
    if isinstance(buckets, list):
        buckets = {bucket["key"]: bucket for bucket in buckets}
    return {str(key): int(bucket["doc_count"]) for key, bucket in buckets.items()}


def _categorical(results: Mapping[str, Any], key: str) -> CategoryCounts:
    terms = results.get(key, {})
    return CategoryCounts(
        # A schemaless feature mapped as a number has numeric keys: categories are text.
        counts={
            str(bucket.get("key_as_string", bucket["key"])): int(bucket["doc_count"])
            for bucket in terms.get("buckets", [])
        },
        other=int(terms.get("sum_other_doc_count", 0)),
        missing=int(results.get(f"{key}_missing", {}).get("doc_count", 0)),
    )


def _sample(
    hits: Sequence[Mapping[str, Any]], columns: Sequence[str | tuple[str, str]]
) -> FloatArray:
    """One row per hit: a column is a feature name or a (object, field) path."""
    paths = [("features", column) if isinstance(column, str) else column for column in columns]
    sample = np.full((len(hits), len(paths)), np.nan)
    for row, hit in enumerate(hits):
        source = hit.get("_source", {})
        for column, (parent, name) in enumerate(paths):
            sample[row, column] = _number((source.get(parent) or {}).get(name))
    return sample


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
