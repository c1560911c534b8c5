"""A one-line progress bar for long baseline builds (the CLI shows it on a terminal only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_WIDTH = 30


@dataclass(frozen=True)
class BuildProgress:
    rows: int
    bytes_read: int
    total_bytes: int


class ProgressBar:
    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.2,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.min_interval = min_interval
        self.started = clock()
        self._last_drawn = -min_interval
        self._drawn = False

    def __call__(self, progress: BuildProgress) -> None:
        now = self.clock()
        if (
            now - self._last_drawn < self.min_interval
            and progress.bytes_read < progress.total_bytes
        ):
            return
        self._last_drawn = now
        self._drawn = True
        self.stream.write("\r" + render(progress, now - self.started))
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def render(progress: BuildProgress, elapsed: float) -> str:
    """`[#####.....]  45.0%  450,000 rows  230,000 rows/s` (share of the file's bytes)."""
    share = progress.bytes_read / progress.total_bytes if progress.total_bytes else 1.0
    share = min(max(share, 0.0), 1.0)
    filled = round(share * _WIDTH)
    rate = progress.rows / elapsed if elapsed > 0 else 0.0
    bar = "#" * filled + "." * (_WIDTH - filled)
    return f"[{bar}] {share * 100:5.1f}%  {progress.rows:,} rows  {rate:,.0f} rows/s"
