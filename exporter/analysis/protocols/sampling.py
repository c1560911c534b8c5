"""Which rows of a large request the analysis reads (see `RowSample`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TypeVar

_T = TypeVar("_T")


class RowSample:
    """Which rows of a request the analysis reads: all, or `limit` of them at random.

    Seeded by the request id, so the same request always keeps the same rows. Adapters
    that build rows (or predictions) one by one ask `indices` / `take`, so a 450,000-row
    request costs what `limit` rows cost; `protocols.parse` applies the sample to what
    an adapter returns whole.
    """

    def __init__(self, limit: int, seed: str) -> None:
        self.limit = limit
        self._seed = seed
        self.total: int | None = None
        self.kept: list[int] | None = None  # None: every row

    def indices(self, n_rows: int) -> Sequence[int]:
        """The rows of an `n_rows`-row request to read; the first call fixes the sample."""
        if self.total is None:
            self.total = n_rows
            if n_rows > self.limit:
                self.kept = sorted(random.Random(self._seed).sample(range(n_rows), self.limit))
        if self.kept is None or n_rows != self.total:
            return range(n_rows)
        return self.kept

    def take(self, values: Sequence[_T]) -> Sequence[_T]:
        """The sampled entries of a per-row sequence (of the request's length)."""
        if self.kept is None or len(values) != self.total:
            return values
        return [values[i] for i in self.kept]


ROW_SAMPLE: ContextVar[RowSample | None] = ContextVar("row_sample", default=None)


def sample_indices(n_rows: int) -> Sequence[int]:
    """For an adapter: the rows to build (every row outside `protocols.parse`)."""
    sample = ROW_SAMPLE.get()
    return range(n_rows) if sample is None else sample.indices(n_rows)


def sample_rows(values: Sequence[_T]) -> Sequence[_T]:
    """For an adapter: the sampled entries of per-row outputs."""
    sample = ROW_SAMPLE.get()
    return values if sample is None else sample.take(values)
