"""Shadow agreement: each shadow's predictions compared with the real answer's for the same
request id, row by row.

A shadow's copy is sent after the real answer, so its exchange reaches the analysis after
the primary's; the real answers' predictions wait in a table bounded in entries and age
(a shadow that answers later than MAX_AGE_S, or past MAX_ENTRIES newer requests, is not
compared). Per row: the predicted classes agree or not; the absolute difference of the
numeric predictions (a regression value, a binary classifier's positive-class
probability), else of the predicted classes' scores.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence

from exporter.analysis.frames import CapturedExchange
from exporter.analysis.protocols.base import Prediction
from exporter.metrics import Metrics
from exporter.records import SHADOW

MAX_ENTRIES = 20_000
MAX_AGE_S = 120.0


class ShadowPairing:
    def __init__(
        self, metrics: Metrics, max_entries: int = MAX_ENTRIES, max_age_s: float = MAX_AGE_S
    ) -> None:
        self._metrics = metrics
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        # request id -> (when remembered, the real answer's predictions)
        self._answers: OrderedDict[str, tuple[float, Sequence[Prediction]]] = OrderedDict()

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
        m = self._metrics
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
        if agree:
            m.shadow_agreement.labels(model, candidate, "agree").inc(agree)
        if disagree:
            m.shadow_agreement.labels(model, candidate, "disagree").inc(disagree)
        if differences:
            histogram = m.shadow_abs_diff.labels(model, candidate)
            for difference in differences:
                histogram.observe(difference)

    def _expire(self, now: float) -> None:
        answers = self._answers
        while answers and (
            len(answers) > self._max_entries
            or now - next(iter(answers.values()))[0] > self._max_age_s
        ):
            answers.popitem(last=False)


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(a - b)
