"""Segments of a window: its rows split by the value of each `segment: true` feature.

For each segment feature (categorical, `exporter.schema`), the SEGMENT_TOP_K values
with the most rows in the window are segments of their own, in order of volume (ties by
value); the rows of every other value, and those without a value, are pooled as
"__other__". So a window has at most K + 1 segments per feature whatever the traffic,
and so have the series on /metrics. Each segment becomes a window of its own, which the
same summary code reads (`windows.sqlite.summarize_window`). On Elasticsearch each
segment is one more aggregation of the window, filtered to its records (`query_clauses`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from exporter.store.sqlite.read import Window
from stats_service.baseline.contents import Baseline
from stats_service.windows.predictions import IntArray

SEGMENT_TOP_K = 20
OTHER = "__other__"


def segment_features(baseline: Baseline) -> tuple[str, ...]:
    return tuple(f.name for f in baseline.schema.features if f.segment)


def largest_values(counts: Mapping[str, int], top_k: int = SEGMENT_TOP_K) -> list[str]:
    """The `top_k` values with the most rows, in that order, ties by value: the segments
    of every store alike."""
    return [value for value, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))[:top_k]]


def query_clauses(counts: Mapping[str, int], rows: int, field: str) -> dict[str, dict[str, Any]]:
    """Segment value -> the Elasticsearch query clause of its records, from the window's
    `counts` of the feature's values at `field` (a `terms` aggregation's) and its `rows`:
    the largest values as `split` picks them, then "__other__" if any record is left."""
    largest = largest_values(counts)
    clauses: dict[str, dict[str, Any]] = {value: {"term": {field: value}} for value in largest}
    if rows > sum(counts[value] for value in largest):
        clauses[OTHER] = {"bool": {"must_not": [{"terms": {field: largest}}]}}
    return clauses


def split(window: Window, feature: str, top_k: int = SEGMENT_TOP_K) -> dict[str, Window]:
    """Segment value -> the window's rows of it (the largest `top_k`, then "__other__")."""
    values = window.categorical.get(feature)
    if values is None or window.count == 0:
        return {}
    largest = largest_values(Counter(v for v in values if v is not None), top_k)
    kept = set(largest)
    groups: dict[str, list[int]] = {value: [] for value in largest}
    other: list[int] = []
    for i, value in enumerate(values):
        (groups[value] if value in kept else other).append(i)
    if other:
        groups[OTHER] = other
    return {value: take(window, np.array(rows, dtype=np.intp)) for value, rows in groups.items()}


def take(window: Window, rows: IntArray) -> Window:
    """The window's rows at `rows`, every column alike."""
    picked = rows.tolist()
    # replace(): any column the window gains is carried along untouched.
    return dataclasses.replace(
        window,
        numeric=window.numeric[rows],
        categorical={name: [c[i] for i in picked] for name, c in window.categorical.items()},
        prediction_value=window.prediction_value[rows],
        prediction_score=window.prediction_score[rows],
        prediction_label=[window.prediction_label[i] for i in picked],
        label=[window.label[i] for i in picked],
        timestamps=window.timestamps[rows],
        probabilities={name: column[rows] for name, column in window.probabilities.items()},
        label_ts=None if window.label_ts is None else window.label_ts[rows],
        probability_texts=[window.probability_texts[i] for i in picked]
        if window.probability_texts
        else [],
    )
