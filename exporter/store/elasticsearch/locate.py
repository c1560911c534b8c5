"""Where a count window begins: the newest n records of a model before some end.

See `read` for the method (a sorted search up to `max_result_window`, beyond it a descent
through histograms over the timestamps, then over sample_key within one millisecond).
`search` sends one request to the model's index and returns its body (None: no index).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.store.base import StoreUnavailable
from exporter.store.elasticsearch.aggregations import routed, scaled, window_query
from exporter.store.elasticsearch.config import epoch_millis

Search = Callable[[dict[str, Any]], dict[str, Any] | None]
# sample_key values are multiples of 2**-53 (see `elasticsearch.log.sample_key`).
_KEY_STEPS = 1 << 53
# Buckets of a histogram per request while locating a count window's start.
_SPLITS = 1000


@dataclass(frozen=True)
class WindowStart:
    """Where a model's newest records before some end begin: the records after
    `start_ts`, and those at `start_ts` with sample_key >= `start_key` (all of them when
    it is None). `rows` records in all, fewer than asked when the model has fewer."""

    start_ts: float
    start_key: float | None
    rows: int


def locate_newest(
    search: Search,
    model: str,
    rows: int,
    end_ts: float,
    max_result_window: int,
    *,
    role: str | None = None,
    candidate: str | None = None,
) -> WindowStart:
    """Where the model's newest `rows` records with a timestamp before `end_ts` begin
    (see the module's documentation); a model without records starts at `end_ts`."""
    if rows < 1:
        raise ValueError(f"rows: expected at least 1, got {rows}")
    before_end = window_query(-math.inf, end_ts, role=role, candidate=candidate)
    request = {
        "query": before_end,
        "size": 0,
        "track_total_hits": True,
        "aggregations": {"first": {"min": {"field": "@timestamp"}}},
    }
    body = search(request)
    total = int(body["hits"]["total"]["value"]) if body else 0
    if not body or total == 0:
        return WindowStart(end_ts, None, 0)
    first_ms = round(body["aggregations"]["first"]["value"])
    if total <= rows:
        return WindowStart(first_ms / 1000, None, total)
    if rows <= max_result_window:
        ms, key = _nth(search, model, before_end, rows)
        return WindowStart(ms / 1000, key, rows)

    # count from first_ms on = total >= rows; from the end on: none.
    ms, above = _descend(
        search, model, before_end, "@timestamp", 1, first_ms, epoch_millis(end_ts), rows
    )
    need = rows - above  # of the records at exactly `ms`
    at_ms = routed({"bool": {"filter": [{"term": {"@timestamp": ms}}]}}, role, candidate)
    if need <= max_result_window:
        key = _nth(search, model, at_ms, need)[1]
    else:
        step, _ = _descend(search, model, at_ms, "sample_key", _KEY_STEPS, 0, _KEY_STEPS, need)
        key = step / _KEY_STEPS
    return WindowStart(ms / 1000, key, rows)


def _descend(
    search: Search,
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
        within = {"range": {field: {"gte": scaled(low, scale), "lt": scaled(high, scale)}}}
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
        body = search(request) or {}
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


def _nth(search: Search, model: str, query: dict[str, Any], n: int) -> tuple[int, float]:
    """(@timestamp in ms, sample_key) of the n-th newest record (ties: key descending)."""
    body = search(
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
