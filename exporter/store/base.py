"""The input log's one small interface, shared by its backends and its readers.

One `LogRecord` (`exporter.records`) per input row. Backends write batches
all-or-nothing as far as the caller is concerned: `write` either returns (every
record is durably accepted, or was already there: writes are idempotent by `id`)
or raises `StoreUnavailable`, and the caller spools the batch for a later retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from exporter.records import GroundTruth, LogRecord, StoreColumns


class StoreUnavailable(Exception):  # noqa: N818 - a state of the store, not a bug
    """The store is down, slow or rejecting: retry later (the records are not lost)."""


class StoreRefused(StoreUnavailable):
    """The store refuses the requests themselves for good (wrong credentials, a wrong
    Elasticsearch flavor: a 4xx other than 408/429). Still "try later" for the records,
    which are spooled, never dropped: the fix is the operator's, and it is said loudly
    (stderr, `mlmon_log_store_refusals_total{status}`). Names the status and the reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class InputLog(Protocol):
    def prepare(self, columns: StoreColumns) -> None:
        """Called once per model (and again when its schema changes) before writes."""

    def write(self, records: Sequence[LogRecord]) -> None:
        """Store the records, idempotently by id. Raises StoreUnavailable."""

    def add_ground_truth(self, labels: Sequence[GroundTruth]) -> None:
        """Upsert labels by id. Raises StoreUnavailable."""

    def close(self) -> None: ...
