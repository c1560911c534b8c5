"""Iterate a slow source one item ahead, in a thread of its own.

Where most of making an item runs without the GIL (SQLite's step, Arrow's parse and
casts, a network read), the next item is made while the caller works on this one: a
baseline's CSV blocks decode while feature code runs, an export's next batch is fetched
while Parquet encodes the last. Memory is two items at most.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], thread_name: str) -> Iterator[T]:
    """`items` in order, each next one made by one worker thread meanwhile (always the
    same thread: a SQLite cursor can go on in it). The worker's exceptions are raised
    here, where the item would have come. Stopped early, it waits for the item under way."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        ahead = pool.submit(next, items, _END)
        while (item := ahead.result()) is not _END:
            ahead = pool.submit(next, items, _END)
            yield item  # type: ignore[misc]
