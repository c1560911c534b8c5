"""Window reads of the Elasticsearch input log, for the stats service.

Everything is computed by the cluster in one search request, so what crosses the network
is bounded by the number of bins, categories and sampled rows, never by the window's size:

- numeric features: one `range` aggregation on the baseline's bin edges (bins
  [edges[i], edges[i+1]), infinite ends left open, as in the baseline) and a `missing`
  count (no value, or null);
- categorical features: `terms` (at most `max_categories`, the rest summed as `other`;
  exact with one shard, approximate like any terms aggregation across shards) and
  `missing`;
- a uniform random sample of rows, without replacement, for the exact two-sample tests:
  the rows with the smallest `sample_key` (a hash of the record id, see `elasticsearch`),
  fetched with only the numeric features' values. Deterministic for a given window;
  independent of feature values, arrival order and shards. Chosen over `random_score`,
  which some Elasticsearch-compatible engines do not randomise, and over `sampler`
  aggregations, which return aggregates rather than rows.

Windows are [start_ts, end_ts) in epoch seconds. Records are visible after the index's
refresh interval (5 s). No percentiles are asked of the cluster.
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

from exporter.store.base import StoreUnavailable
from exporter.store.elasticsearch_config import (
    ElasticsearchConfig,
    config_from_url,
    epoch_millis,
    index_name,
    make_client,
)

# Elasticsearch serves at most this many hits per request (`index.max_result_window`).
MAX_SAMPLE_SIZE = 10_000


@dataclass(frozen=True)
class NumericCounts:
    edges: tuple[float, ...]  # as given, usually -inf first and +inf last
    counts: tuple[int, ...]  # len(edges) - 1 bins: values v with edges[i] <= v < edges[i+1]
    missing: int


@dataclass(frozen=True)
class CategoryCounts:
    counts: Mapping[str, int]  # the most frequent categories, at most `max_categories`
    other: int  # rows with a value outside `counts`
    missing: int


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
    sample: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))

    def sample_of(self, name: str) -> npt.NDArray[np.float64]:
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
    ) -> None:
        self.config = config
        self.max_categories = max_categories
        self._client = client if client is not None else make_client(config)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchReader:
        return cls(config_from_url(url, **options))

    def count_window(self, model: str, start_ts: float, end_ts: float) -> int:
        try:
            response = self._client.count(
                index=index_name(self.config.index_prefix, model),
                query=_window(start_ts, end_ts),
            )
        except NotFoundError:
            return 0  # nothing logged for this model yet
        except (ApiError, TransportError) as exc:
            raise StoreUnavailable(f"elasticsearch: counting {model}: {exc}") from exc
        return int(response.body["count"])

    def aggregate_window(
        self,
        model: str,
        start_ts: float,
        end_ts: float,
        numeric_edges: Mapping[str, Sequence[float]],
        categorical: Sequence[str],
        sample_size: int,
    ) -> EsWindow:
        numeric = list(numeric_edges)
        for name in numeric:
            if len(numeric_edges[name]) < 2:
                raise ValueError(f"numeric_edges[{name!r}]: expected at least 2 edges")
        size = min(max(sample_size, 0), MAX_SAMPLE_SIZE) if numeric else 0
        aggregations: dict[str, Any] = {}
        for position, name in enumerate(numeric):
            path = f"features.{name}"
            aggregations[f"n{position}"] = {
                "range": {"field": path, "ranges": _ranges(numeric_edges[name])}
            }
            aggregations[f"nm{position}"] = {"missing": {"field": path}}
        for position, name in enumerate(categorical):
            path = f"features.{name}"
            aggregations[f"c{position}"] = {"terms": {"field": path, "size": self.max_categories}}
            aggregations[f"cm{position}"] = {"missing": {"field": path}}
        request: dict[str, Any] = {
            "query": _window(start_ts, end_ts),
            "size": size,
            "track_total_hits": True,
            "aggregations": aggregations,
        }
        if size:
            request["sort"] = [{"sample_key": "asc"}]
            request["source_includes"] = [f"features.{name}" for name in numeric]
        try:
            body = self._client.search(
                index=index_name(self.config.index_prefix, model), **request
            ).body
        except NotFoundError:
            body = {"hits": {"total": {"value": 0}, "hits": []}}
        except (ApiError, TransportError) as exc:
            raise StoreUnavailable(f"elasticsearch: reading a window of {model}: {exc}") from exc
        results: Mapping[str, Any] = body.get("aggregations", {})
        return EsWindow(
            model=model,
            start_ts=start_ts,
            end_ts=end_ts,
            rows=int(body["hits"]["total"]["value"]),
            numeric={
                name: _numeric(numeric_edges[name], results, position)
                for position, name in enumerate(numeric)
            },
            categorical={
                name: _categorical(results, position) for position, name in enumerate(categorical)
            },
            sample_columns=tuple(numeric) if size else (),
            sample=_sample(body["hits"]["hits"], numeric) if size else np.empty((0, 0)),
        )

    def close(self) -> None:
        self._client.close()


def _window(start_ts: float, end_ts: float) -> dict[str, Any]:
    bounds = {"gte": epoch_millis(start_ts), "lt": epoch_millis(end_ts)}
    return {"bool": {"filter": [{"range": {"@timestamp": bounds}}]}}


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


def _numeric(edges: Sequence[float], results: Mapping[str, Any], position: int) -> NumericCounts:
    buckets = results.get(f"n{position}", {}).get("buckets", [])
    counts = tuple(int(bucket["doc_count"]) for bucket in buckets)
    return NumericCounts(
        edges=tuple(float(edge) for edge in edges),
        counts=counts or (0,) * max(len(edges) - 1, 0),
        missing=int(results.get(f"nm{position}", {}).get("doc_count", 0)),
    )


def _categorical(results: Mapping[str, Any], position: int) -> CategoryCounts:
    terms = results.get(f"c{position}", {})
    return CategoryCounts(
        # A schemaless feature mapped as a number has numeric keys: categories are text.
        counts={
            str(bucket.get("key_as_string", bucket["key"])): int(bucket["doc_count"])
            for bucket in terms.get("buckets", [])
        },
        other=int(terms.get("sum_other_doc_count", 0)),
        missing=int(results.get(f"cm{position}", {}).get("doc_count", 0)),
    )


def _sample(hits: Sequence[Mapping[str, Any]], names: Sequence[str]) -> npt.NDArray[np.float64]:
    sample = np.full((len(hits), len(names)), np.nan)
    for row, hit in enumerate(hits):
        features = hit.get("_source", {}).get("features", {})
        for column, name in enumerate(names):
            sample[row, column] = _number(features.get(name))
    return sample


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
