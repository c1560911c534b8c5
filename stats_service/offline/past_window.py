"""A past window of the input log, as `export` and `baseline --store` name it (`--window`).

Three forms:
  `1h`, `30m`, `7d`, `45s`   the last duration ending now: [now - duration, now)
  `last_1000`                the model's newest 1,000 records before now
  `START/END`                an ISO 8601 range [START, END), e.g.
                             `2026-12-01T00:00/2026-12-02T00:00`; UTC unless an offset
                             is given (`2026-12-01T00:00+01:00`); a date alone is midnight

The first two are the stats service's own window names (`stats_service.settings.parse_window`),
so a window that `serve` evaluates can be exported under the same name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from stats_service.offline.errors import OfflineError
from stats_service.settings import parse_window

FORMS = "a duration such as 1h or 30m, last_N (the newest N rows), or START/END in ISO 8601"


class WindowSpecError(OfflineError):
    """A --window that does not parse; the message says what was expected."""


@dataclass(frozen=True)
class PastWindow:
    """Records with start_ts <= timestamp < end_ts; with `rows`, only the newest that many."""

    spec: str
    start_ts: float
    end_ts: float
    rows: int | None = None


def parse_past_window(spec: str, now: float) -> PastWindow:
    text = spec.strip()
    if "/" in text:
        start_text, _, end_text = text.partition("/")
        start, end = _instant(start_text, spec), _instant(end_text, spec)
        if not start < end:
            raise WindowSpecError(f"window {spec!r}: expected START before END")
        return PastWindow(spec, start, end)
    try:
        window = parse_window(text)
    except ValueError:
        raise WindowSpecError(f"window {spec!r}: expected {FORMS}") from None
    if window.rows is not None:
        if window.rows < 1:
            raise WindowSpecError(f"window {spec!r}: expected at least one row")
        return PastWindow(spec, -math.inf, now, rows=window.rows)
    duration = window.duration_s or 0.0
    if duration <= 0:
        raise WindowSpecError(f"window {spec!r}: expected a duration longer than 0")
    return PastWindow(spec, now - duration, now)


def _instant(text: str, spec: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowSpecError(
            f"window {spec!r}: {text.strip()!r} is not an ISO 8601 time "
            "(expected e.g. 2026-12-01T00:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
