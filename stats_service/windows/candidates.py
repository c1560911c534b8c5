"""A window's candidate answers next to the primary's, from the SQLite input log (the
same from Elasticsearch: `windows.elasticsearch_candidates`).

The sidecar logs every answer with a `role` (primary, shadow, canary, fallback) and, for
a candidate, its configured name in `candidate` (records contract of issue 14). Per model
and window this reads, for each candidate found in the window:
- a shadow: its answers paired with the primary's answers to the same request and row.
  A shadow record's id is the primary's id + ":shadow:<candidate>", so each pair is one
  primary-key lookup; ground truth is posted for the primary's id, so both sides of a
  pair carry the primary record's label. A shadow whose primary record is not in the log
  (sampled out, lost) is counted in `rows` but not paired;
- a canary: its answers and the primary's answers in the same window, unpaired (they
  answered different clients), each with its own ground truth.
Candidate records are looked up under the model name of the request, which is what the
sidecar logs for every route (the path's model, else its configured one).

Candidates are those with rows in the window, at most MAX_CANDIDATES per model (the most
rows first), so a log cannot create unbounded series. A count window ("last_1000") spans
the time of the model's newest `rows` records that are not shadows (the rows the main
window reads); its candidates are compared within that span. The route columns are in
the covering index `records_window`, so finding the candidates walks the index alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from stats_service.settings import WindowSpec
from stats_service.windows.candidate_window import (
    MAX_CANDIDATES,
    ROLES,
    CandidateReader,
    CandidateRole,
    CandidateWindow,
    Predictions,
)
from stats_service.windows.spec import check_spec
from stats_service.windows.sqlite import SqliteWindowReader

__all__ = [
    "MAX_CANDIDATES",
    "ROLES",
    "CandidateReader",
    "CandidateRole",
    "CandidateWindow",
    "Predictions",
    "SqliteCandidateReader",
    "open_candidate_reader",
]

_FOUND = """
SELECT role, candidate, count(*) FROM records
WHERE model = ? AND ts >= ? AND ts < ? AND role IN ('shadow', 'canary') AND candidate != ''
GROUP BY role, candidate ORDER BY count(*) DESC, candidate LIMIT ?
"""
_PAIRS = """
SELECT s.prediction_value, s.prediction_score, s.prediction_label,
       p.prediction_value, p.prediction_score, p.prediction_label, p.label
FROM records AS s JOIN records AS p ON p.id = substr(s.id, 1, length(s.id) - ?)
WHERE s.model = ? AND s.ts >= ? AND s.ts < ? AND s.role = 'shadow' AND s.candidate = ?
  AND p.role != 'shadow'
"""
_ANSWERS = """
SELECT prediction_value, prediction_score, prediction_label, label FROM records
WHERE model = ? AND ts >= ? AND ts < ? AND role = ? AND candidate = ?
"""
# The oldest of the newest `rows` non-shadow records: where a count window begins.
_COUNT_START = """
SELECT ts FROM records WHERE model = ? AND ts < ? AND role != 'shadow'
ORDER BY ts DESC LIMIT 1 OFFSET ?
"""
_OLDEST = "SELECT min(ts) FROM records WHERE model = ? AND ts < ?"


def open_candidate_reader(store_url: str, **elasticsearch_options: Any) -> CandidateReader:
    """The candidate reader of the sidecar's store URL, as `open_window_reader` picks it
    (`windows.elasticsearch_candidates` for http(s)://; `elasticsearch_options` are
    `ElasticsearchConfig` fields, ignored for SQLite). Nothing is connected yet."""
    if store_url.startswith("sqlite:"):
        # The window reader's checks of the URL, on a reader of this class.
        return SqliteCandidateReader(SqliteWindowReader.from_url(store_url).path)
    from stats_service.windows.elasticsearch_candidates import ElasticsearchCandidateReader

    return ElasticsearchCandidateReader.from_url(store_url, **elasticsearch_options)


class SqliteCandidateReader(SqliteWindowReader):
    """The window reader's read-only connection, for candidate reads."""

    def read_candidates(self, model: str, spec: WindowSpec, now: float) -> list[CandidateWindow]:
        check_spec(spec)
        if self._connection is None and not self.path.is_file():
            return []
        with self._lock, self._reading() as connection:
            start = _start(connection, model, spec, now)
            found = connection.execute(_FOUND, (model, start, now, MAX_CANDIDATES)).fetchall()
            windows = []
            primary: Predictions | None = None  # the canaries' other side, read once
            for role, name, rows in found:
                if role == "shadow":
                    suffix = len(f":shadow:{name}")
                    pairs = connection.execute(_PAIRS, (suffix, model, start, now, name))
                    answers, theirs = _pair_sides(pairs.fetchall())
                else:
                    if primary is None:
                        primary = _answers(connection, model, start, now, "primary", "")
                    answers, theirs = _answers(connection, model, start, now, role, name), primary
                windows.append(
                    CandidateWindow(model, spec.name, name, role, start, now, rows, theirs, answers)
                )
        return windows


def _start(connection: sqlite3.Connection, model: str, spec: WindowSpec, now: float) -> float:
    if spec.rows is None:
        return now - (spec.duration_s or 0.0)
    row = connection.execute(_COUNT_START, (model, now, spec.rows - 1)).fetchone()
    if row is None:  # fewer records than `rows`: all of them
        row = connection.execute(_OLDEST, (model, now)).fetchone()
    return now if row is None or row[0] is None else float(row[0])


def _answers(
    connection: sqlite3.Connection, model: str, start: float, end: float, role: str, name: str
) -> Predictions:
    return _side(connection.execute(_ANSWERS, (model, start, end, role, name)).fetchall())


def _pair_sides(pairs: Sequence[tuple[Any, ...]]) -> tuple[Predictions, Predictions]:
    """(the shadow's side, the primary's side): both with the primary record's label."""
    shadow = [(value, score, label, truth) for value, score, label, *_, truth in pairs]
    primary = [pair[3:] for pair in pairs]
    return _side(shadow), _side(primary)


def _side(rows: Sequence[Sequence[Any]]) -> Predictions:
    if not rows:
        return Predictions(np.empty(0), np.empty(0), (), ())
    values, scores, labels, truth = zip(*rows, strict=True)
    # numpy reads a NULL (None) into a float array as NaN.
    return Predictions(
        value=np.array(values, dtype=np.float64),
        score=np.array(scores, dtype=np.float64),
        label=tuple(labels),
        truth=tuple(truth),
    )
