"""A shadow's exchange next to its primary's, by request id.

A shadow's copy is sent after the real answer, so its exchange reaches the analysis after
the primary's. Two tables keep what the primary's analysis found, both bounded:

- `ShadowPairing`, agreement: each shadow's predictions compared with the real answer's,
  row by row. The real answers' predictions wait in a table bounded in entries and age
  (a shadow that answers later than MAX_AGE_S, or past MAX_ENTRIES newer requests, is not
  compared). Per row: the predicted classes agree or not; the absolute difference of the
  numeric predictions (a regression value, a binary classifier's positive-class
  probability), else of the predicted classes' scores.
- `PrimaryRequests`, the parsed requests: a shadow's request is byte for byte its
  primary's, so the analysis parses only the shadow's response (`parse_answer`) and
  reuses the rows the primary's parse read. Rows weigh more than predictions: this table
  holds at most MAX_HELD_ROWS rows for at most MAX_HELD_AGE_S (a candidate answers within
  its timeout; a shadow whose primary is not held is parsed whole, as any exchange).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

from exporter.analysis import protocols
from exporter.analysis.frames import CapturedExchange
from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    ParsedExchange,
    Prediction,
)
from exporter.metrics import Metrics
from exporter.records import SHADOW
from exporter.tally import Tally

MAX_ENTRIES = 20_000
MAX_AGE_S = 120.0
MAX_HELD_ROWS = 20_000
MAX_HELD_AGE_S = 30.0

_T = TypeVar("_T")


class ShadowPairing:
    def __init__(
        self,
        metrics: Metrics,
        tally: Tally,
        max_entries: int = MAX_ENTRIES,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._metrics = metrics
        # Written by whoever flushes it: in multiprocess mode a histogram observation
        # per row costs 20 µs.
        self._tally = tally
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        # request id -> (when remembered, the real answer's predictions)
        self._answers: OrderedDict[str, tuple[float, Sequence[Prediction]]] = OrderedDict()
        # Bounded: model labels pass a LabelCap, candidates are configured routes.
        self._series: dict[tuple[str, str], tuple[Counter, Counter, Histogram]] = {}

    def offer(self, model: str, item: CapturedExchange, predictions: Sequence[Prediction]) -> None:
        """A parsed exchange: a real answer is remembered, a shadow's compared with it."""
        now = time.monotonic()
        if item.role != SHADOW:
            self._answers[item.request_id] = (now, predictions)
            self._answers.move_to_end(item.request_id)
            self._expire(now)
            return
        entry = self._answers.get(item.request_id)
        if entry is None or now - entry[0] > self._max_age_s:
            return
        self.compare(model, item.candidate, entry[1], predictions)

    def compare(
        self,
        model: str,
        candidate: str,
        answered: Sequence[Prediction],
        shadow: Sequence[Prediction],
    ) -> None:
        agree = disagree = 0
        differences: list[float] = []
        for real, copy in zip(answered, shadow, strict=False):
            if real.label is not None and copy.label is not None:
                if real.label == copy.label:
                    agree += 1
                else:
                    disagree += 1
            difference = _difference(real.value, copy.value)
            if difference is None and real.label == copy.label:
                difference = _difference(real.score, copy.score)
            if difference is not None:
                differences.append(difference)
        if not (agree or disagree or differences):
            return
        agreed, disagreed, histogram = self._series_of(model, candidate)
        tally = self._tally
        if agree:
            tally.inc(agreed, agree)
        if disagree:
            tally.inc(disagreed, disagree)
        for difference in differences:
            tally.observe(histogram, difference)

    def _series_of(self, model: str, candidate: str) -> tuple[Counter, Counter, Histogram]:
        series = self._series.get((model, candidate))
        if series is None:
            m = self._metrics
            series = self._series[model, candidate] = (
                m.shadow_agreement.labels(model, candidate, "agree"),
                m.shadow_agreement.labels(model, candidate, "disagree"),
                m.shadow_abs_diff.labels(model, candidate),
            )
        return series

    def _expire(self, now: float) -> None:
        answers = self._answers
        while answers and (
            len(answers) > self._max_entries
            or now - next(iter(answers.values()))[0] > self._max_age_s
        ):
            answers.popitem(last=False)


class PrimaryRequests(Generic[_T]):
    """What the analysis of primaries' requests found, by request id, for their shadows."""

    def __init__(self, max_rows: int = MAX_HELD_ROWS, max_age_s: float = MAX_HELD_AGE_S) -> None:
        self._max_rows = max_rows
        self._max_age_s = max_age_s
        self._rows = 0
        # request id -> (when remembered, its rows, what was found)
        self._held: OrderedDict[str, tuple[float, int, _T]] = OrderedDict()

    def remember(self, request_id: str, rows: int, found: _T) -> None:
        now = time.monotonic()
        held = self._held
        previous = held.pop(request_id, None)
        if previous is not None:  # a client may reuse its request ids
            self._rows -= previous[1]
        held[request_id] = (now, rows, found)
        self._rows += rows
        while held and (
            self._rows > self._max_rows or now - next(iter(held.values()))[0] > self._max_age_s
        ):
            self._rows -= held.popitem(last=False)[1][1]

    def find(self, request_id: str) -> _T | None:
        entry = self._held.get(request_id)
        if entry is None or time.monotonic() - entry[0] > self._max_age_s:
            return None
        return entry[2]


def parse_answer(
    item: CapturedExchange,
    response_headers: Mapping[str, str],
    request: ParsedExchange,
    config: AdapterConfig,
) -> ParsedExchange:
    """A shadow's exchange from its primary's parsed `request` and its own response."""
    exchange = Exchange(
        method=item.method,
        path=item.path,
        query="",
        request_headers={},
        request_body=b"",
        status=item.status,
        response_headers=response_headers,
        response_body=item.response_body,
        sample_seed=item.request_id,
    )
    return protocols.parse_answer(exchange, config, request)


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(a - b)
