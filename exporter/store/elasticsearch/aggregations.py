"""The cluster's side of a window read: the aggregations asked for, and their answers.

What `read.ElasticsearchReader` sends (range, terms and missing aggregations on the
baseline's bins, window filters) and how it decodes the answers into counts, so that the
reader itself only sequences requests. See `read` for what each aggregation counts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.records import ROLES
from exporter.store.elasticsearch.config import epoch_millis

FloatArray = npt.NDArray[np.float64]


def empty() -> FloatArray:
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


def as_bins(name: str, spec: Sequence[float] | Bins) -> Bins:
    bins = spec if isinstance(spec, Bins) else Bins(tuple(float(edge) for edge in spec))
    if len(bins.edges) < 2:
        raise ValueError(f"numeric_edges[{name!r}]: expected at least 2 edges")
    return bins


def window_query(
    start_ts: float,
    end_ts: float,
    start_key: float | None = None,
    *,
    role: str | None = None,
    candidate: str | None = None,
) -> dict[str, Any]:
    """The window's records; by default every one but the shadows' (see `routed`)."""
    return routed(_dated_window(start_ts, end_ts, start_key), role, candidate)


def routed(query: dict[str, Any], role: str | None, candidate: str | None) -> dict[str, Any]:
    """`query`'s records answered by a route: by default every record but the shadows'
    (a shadow's record repeats the primary's inputs; counting both would count each
    request twice); a role (one of ROLES) and a candidate (a route's configured name)
    select exactly those. Records written before routes existed have neither field and
    count as the primary's."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    filters = [query]
    must_not = [{"term": {"role": "shadow"}}] if role is None else []
    if role is not None:
        filters.append(_keyword_or_absent("role", role, "primary"))
    if candidate is not None:
        filters.append(_keyword_or_absent("candidate", candidate, ""))
    if len(filters) == 1 and not must_not:
        return query
    return {"bool": {"filter": filters, "must_not": must_not}}


def _keyword_or_absent(field: str, value: str, default: str) -> dict[str, Any]:
    term = {"term": {field: value}}
    if value != default:
        return term
    absent = {"bool": {"must_not": [{"exists": {"field": field}}]}}
    return {"bool": {"should": [term, absent], "minimum_should_match": 1}}


def _dated_window(start_ts: float, end_ts: float, start_key: float | None) -> dict[str, Any]:
    if start_key is None:
        return {"bool": {"filter": [dated_range(start_ts, end_ts)]}}
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
                dated_range(-math.inf, end_ts),
                {"bool": {"should": [after_start, at_start], "minimum_should_match": 1}},
            ]
        }
    }


def dated_range(start_ts: float, end_ts: float) -> dict[str, Any]:
    """Records in [start_ts, end_ts); either way, only records: label-only documents have
    no @timestamp."""
    bounds: dict[str, int] = {}
    if start_ts > -math.inf:
        bounds["gte"] = epoch_millis(start_ts)
    if end_ts < math.inf:
        bounds["lt"] = epoch_millis(end_ts)
    return {"range": {"@timestamp": bounds}} if bounds else {"exists": {"field": "@timestamp"}}


def scaled(value: int, scale: int) -> float | int:
    return value if scale == 1 else value / scale  # epoch milliseconds stay integers


def window_aggregations(
    bins: Mapping[str, Bins],
    categorical: Sequence[str],
    prediction: Bins | Terms | None,
    terms_size: int,
) -> dict[str, Any]:
    """Every aggregation of one window read, keyed n<i> (numeric features, in order), c<i>
    (categorical ones) and p (the prediction), as the decoders below expect them."""
    aggregations: dict[str, Any] = {}
    for position, (name, spec) in enumerate(bins.items()):
        aggregations[f"n{position}"] = range_aggregation(f"features.{name}", spec)
    for position, name in enumerate(categorical):
        aggregations.update(terms_aggregations(f"c{position}", f"features.{name}", terms_size))
    if isinstance(prediction, Bins):
        aggregations["p"] = range_aggregation("prediction.value", prediction)
    elif isinstance(prediction, Terms):
        aggregations.update(terms_aggregations("p", "prediction.label", terms_size))
    return aggregations


def range_aggregation(path: str, bins: Bins) -> dict[str, Any]:
    """Keyed: engines return ranges sorted by their bounds, and the out-of-range ones
    overlap the bins."""
    ranges: list[dict[str, Any]] = [
        {"key": f"b{i}", **bounds} for i, bounds in enumerate(range_bounds(bins.edges))
    ]
    if bins.minimum is not None and bins.maximum is not None:
        above = math.nextafter(bins.maximum, math.inf)  # "from" is inclusive: v > maximum
        if math.isfinite(bins.minimum):
            ranges.append({"key": "below", "to": bins.minimum})
        if math.isfinite(above):
            ranges.append({"key": "above", "from": above})
    return {"range": {"field": path, "keyed": True, "ranges": ranges}}


def terms_aggregations(key: str, path: str, size: int) -> dict[str, Any]:
    return {
        key: {"terms": {"field": path, "size": size}},
        f"{key}_missing": {"missing": {"field": path}},
    }


def range_bounds(edges: Sequence[float]) -> list[dict[str, float]]:
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


def numeric_counts(bins: Bins, results: Mapping[str, Any], key: str, rows: int) -> NumericCounts:
    counts = keyed_counts(results.get(key, {}))
    in_bins = tuple(counts.get(f"b{i}", 0) for i in range(len(bins.edges) - 1))
    return NumericCounts(
        edges=bins.edges,
        counts=in_bins,
        missing=rows - sum(in_bins),
        below_minimum=counts.get("below", 0),
        above_maximum=counts.get("above", 0),
    )


def keyed_counts(aggregation: Mapping[str, Any]) -> dict[str, int]:
    """doc_count by key of a keyed range aggregation (as a list, should an engine ignore
    `keyed`)."""
    buckets = aggregation.get("buckets", {})
    if isinstance(buckets, list):
        buckets = {bucket["key"]: bucket for bucket in buckets}
    return {str(key): int(bucket["doc_count"]) for key, bucket in buckets.items()}


def category_counts(results: Mapping[str, Any], key: str) -> CategoryCounts:
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


def sample_matrix(
    hits: Sequence[Mapping[str, Any]], columns: Sequence[str | tuple[str, str]]
) -> FloatArray:
    """One row per hit: a column is a feature name or a (object, field) path."""
    paths = [("features", column) if isinstance(column, str) else column for column in columns]
    sample = np.full((len(hits), len(paths)), np.nan)
    for row, hit in enumerate(hits):
        source = hit.get("_source", {})
        for column, (parent, name) in enumerate(paths):
            sample[row, column] = as_number((source.get(parent) or {}).get(name))
    return sample


def as_number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)
