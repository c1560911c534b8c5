"""Bounded labels and in-memory tallies for the sidecar's metrics.

`LabelCap` lets through an allow-list, or the first N distinct values, and folds the
rest into `__other__`, so a client cannot create unbounded time series. `Tally` gathers
counts and observations in plain Python and writes them to the metrics in one go.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from exporter.names import printable

OTHER = "__other__"


class LabelCap:
    """Bounds one label's values: an allow-list, else the first `limit` seen."""

    def __init__(self, limit: int, allowed: Iterable[str] = ()) -> None:
        self._allowed = frozenset(allowed)
        self._limit = limit
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        known = self._seen.get(value)
        if known is not None:
            return known
        with self._lock:
            if self._allowed:
                mapped = value if value in self._allowed else OTHER
            else:
                mapped = printable(value) if len(self._seen) < self._limit else OTHER
            if len(self._seen) < self._limit * 4:  # remembers rejects too, but boundedly
                self._seen[value] = mapped
            return mapped


class Tally:
    """Counts and observations gathered in plain Python, written to the metrics in one go.

    In multiprocess mode every `inc` or `observe` takes a lock and writes a memory-mapped
    file: 7 µs for a counter, 20 µs for a histogram, about 110 µs per proxied request
    and 120 µs per analysed exchange. Here each costs a dictionary update, and `flush`
    writes every touched series once. Not thread-safe: one thread tallies and flushes.
    """

    def __init__(self) -> None:
        self._counts: dict[Counter, float] = {}
        self._histograms: dict[Histogram, _HistogramTally] = {}

    def inc(self, counter: Counter, amount: float = 1.0) -> None:
        """`counter` is a labelled child (or a metric without labels)."""
        self._counts[counter] = self._counts.get(counter, 0.0) + amount

    def observe(self, histogram: Histogram, value: float) -> None:
        tally = self._histograms.get(histogram)
        if tally is None:
            tally = self._histograms[histogram] = _HistogramTally(histogram)
        tally.observe(value)

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for tally in self._histograms.values():
            tally.flush()


class _HistogramTally:
    # Written through the histogram's own bucket and sum values (prometheus_client has
    # no public bulk observe); tests/unit/exporter/test_metrics.py checks the exposition matches
    # one `observe` per value.
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds: list[float] = histogram._upper_bounds
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        # Bucket i holds bounds[i-1] < value <= bounds[i], as Histogram.observe counts.
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        if not any(self._counts):
            return
        buckets = self._histogram._buckets
        for index, count in enumerate(self._counts):
            if count:
                buckets[index].inc(count)
                self._counts[index] = 0
        self._histogram._sum.inc(self._sum)
        self._sum = 0.0
