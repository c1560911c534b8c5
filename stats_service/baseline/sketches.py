"""Bounded, deterministic accumulators fed chunk by chunk while a baseline is built.

Results do not depend on how the data is cut into chunks: reservoirs draw one uniform
double per item from a generator seeded by their name, counters add up. Moments merge
per chunk (Chan et al.), so mean and std may differ in the last bits between chunk sizes.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exporter.features.table import FloatArray

IndexArray = npt.NDArray[np.intp]
# Numeric values a baseline keeps for its quantiles, at least (more when its row sample is
# larger); the stats service calibrates its drift thresholds to this reservoir.
QUANTILE_SAMPLE_SIZE = 100_000


def _seed(name: str) -> int:
    """A seed of its own per reservoir, independent of feature order and chunking."""
    return int.from_bytes(hashlib.sha256(f"mlmon-reservoir:{name}".encode()).digest()[:8])


class ReservoirSlots:
    """Algorithm R over a stream: which items of each chunk go to which slot.

    The owner keeps the items; this class only decides, so one policy serves numbers,
    strings and whole rows. Item t (0-based) enters while t < capacity, later with
    probability capacity / (t + 1) into slot floor(u * (t + 1)).
    """

    def __init__(self, capacity: int, name: str) -> None:
        self.capacity = capacity
        self.seen = 0
        self._rng = np.random.default_rng(_seed(name))
        # Per slot, the last draw of the current chunk that chose it; -1 between calls.
        self._last: IndexArray | None = None

    def place(self, count: int) -> tuple[IndexArray, IndexArray]:
        """(positions in the chunk, slots) for a chunk of `count` items, in stream order."""
        start = self.seen
        self.seen += count
        direct = max(0, min(count, self.capacity - start))
        positions = np.arange(direct)
        slots = np.arange(start, start + direct)
        if direct == count:
            return positions, slots
        # Item t's slot is floor(u * (t + 1)); it is kept when that is below capacity,
        # i.e. when u * (t + 1) is (capacity is an integer). Computed in place: this runs
        # for every item of every feature.
        drawn = self._rng.random(count - direct)
        drawn *= np.arange(start + direct + 1, start + count + 1, dtype=np.float64)
        kept = np.flatnonzero(drawn < self.capacity)
        positions = np.concatenate((positions, kept + direct))
        slots = np.concatenate((slots, drawn[kept].astype(np.intp)))  # floor: u * (t+1) >= 0
        # A later item replacing an earlier one in the same slot must win, as in the
        # sequential algorithm: keep the last occurrence of each slot.
        if self._last is None:
            self._last = np.full(self.capacity, -1, dtype=np.intp)
        order = np.arange(len(slots))
        np.maximum.at(self._last, slots, order)
        latest = self._last[slots] == order
        self._last[slots] = -1
        return positions[latest], slots[latest]


class NumberReservoir:
    def __init__(self, capacity: int, name: str) -> None:
        self.name = name
        self._slots = ReservoirSlots(capacity, name)
        self._values = np.empty(capacity)

    def add(self, values: FloatArray) -> None:
        positions, slots = self._slots.place(len(values))
        self._values[slots] = values[positions]

    def values(self) -> FloatArray:
        return self._values[: min(self._slots.seen, self._slots.capacity)].copy()

    def subsample(self, size: int) -> FloatArray:
        """A uniform, deterministic sample of `size` of the reservoir's values, which is
        a uniform sample of the stream (a uniform subset of a uniform sample)."""
        values = self.values()
        if size >= len(values):
            return values
        rng = np.random.default_rng(_seed(f"{self.name}:subsample"))
        return values[np.sort(rng.choice(len(values), size=size, replace=False))]


class TextReservoir:
    def __init__(self, capacity: int, name: str) -> None:
        self._slots = ReservoirSlots(capacity, name)
        self._values: list[str] = [""] * capacity

    def add(self, values: Sequence[str]) -> None:
        positions, slots = self._slots.place(len(values))
        for position, slot in zip(positions.tolist(), slots.tolist(), strict=True):
            self._values[slot] = values[position]

    def add_numbered(self, numbers: IndexArray, texts: Sequence[str]) -> None:
        """`add` of the items `texts[numbers]`, without a Python object per item."""
        positions, slots = self._slots.place(len(numbers))
        for number, slot in zip(numbers[positions].tolist(), slots.tolist(), strict=True):
            self._values[slot] = texts[number]

    def values(self) -> list[str]:
        return self._values[: min(self._slots.seen, self._slots.capacity)]


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of finite values (float64)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, values: FloatArray) -> None:
        n = len(values)
        if n == 0:
            return
        chunk_mean = float(values.mean())
        chunk_m2 = float(((values - chunk_mean) ** 2).sum())
        total = self.count + n
        delta = chunk_mean - self.mean
        self.mean += delta * n / total
        self.m2 += chunk_m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0)."""
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


class CategoryCounter:
    """Counts per category, tracking at most `max_tracked` distinct values: once full,
    values not yet tracked are counted as `__other__`."""

    def __init__(self, max_tracked: int) -> None:
        self.max_tracked = max_tracked
        self.counts: dict[str, int] = {}
        self.other = 0

    def add(self, values: Sequence[str]) -> None:
        self.add_counts(Counter(values).items())

    def add_counts(self, counts: Iterable[tuple[str, int]]) -> None:
        """`add` of `count` times each value, the values in order of first appearance."""
        for value, count in counts:
            if value in self.counts:
                self.counts[value] += count
            elif len(self.counts) < self.max_tracked:
                self.counts[value] = count
            else:
                self.other += count

    def top(self, limit: int) -> tuple[list[tuple[str, int]], int]:
        """The `limit` most frequent categories (ties by text) and the count of the rest."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        rest = sum(count for _, count in ranked[limit:])
        return ranked[:limit], rest + self.other
