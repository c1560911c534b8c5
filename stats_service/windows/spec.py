"""What every window reader shares: the reader's interface, the row-sample cap, labels.

Windows (`WindowSpec`, parsed from the settings): a time window holds the records with
now - duration_s <= timestamp < now; a count window the model's newest `rows` records
with a timestamp before now (start_ts is then the oldest one's timestamp, or now when
there is none). A model without records reads as an empty summary (rows 0), a store that
cannot be read raises `StoreUnavailable`.

Ground truth: text labels stay text, every number becomes a float (`decode_label`);
a posted boolean reads as 1.0 / 0.0 from both stores, since SQLite stores it as 0 / 1.
"""

from __future__ import annotations

from typing import Protocol

from exporter.records import LabelValue
from stats_service.baseline.contents import Baseline
from stats_service.settings import WindowSpec
from stats_service.windows.summary import WindowSummary

__all__ = ["ROW_SAMPLE_CAP", "WindowReader", "WindowSpec", "check_spec", "decode_label"]

# Rows of `WindowSummary.row_sample`, the same for both stores: Elasticsearch returns at
# most 10,000 hits per request, and multivariate checks gain little beyond that.
ROW_SAMPLE_CAP = 10_000


class WindowReader(Protocol):
    def read(self, model: str, spec: WindowSpec, baseline: Baseline, now: float) -> WindowSummary:
        """The model's window ending at `now` (epoch seconds), on the baseline's bins.
        Raises StoreUnavailable when the store cannot be read."""

    def close(self) -> None: ...


def check_spec(spec: WindowSpec) -> None:
    duration, rows = spec.duration_s, spec.rows
    if (duration is None) == (rows is None):
        raise ValueError(f"window {spec.name!r}: expected exactly one of duration_s and rows")
    if (duration is not None and not duration > 0) or (rows is not None and rows < 1):
        raise ValueError(f"window {spec.name!r}: expected a positive duration or row count")


def decode_label(value: LabelValue) -> str | float:
    """Ground truth as the statistics see it, whichever store kept it."""
    return value if isinstance(value, str) else float(value)
