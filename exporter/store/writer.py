"""Writes records to the input log from a thread of the analysis process; loses nothing.

The analysis hands records over with `submit` and goes on: a slow store never holds
it. The writer thread sends batches to the store. When the store fails (down, slow
past its timeout, rejecting), the batch goes to the on-disk spool, the store is
marked down, and later batches go straight to the spool; the store is probed again
after a backoff (1 s doubling to 10 s) by replaying the oldest spooled segment.
While anything is spooled, new records are spooled behind it, so the store receives
records in order. Only when the spool is full are records dropped, and counted.

The most a SIGKILL can lose is what sits in memory: the hand-over queue here
(`max_pending` records) and the serving process's pipe (`queue_max_items`
exchanges). On SIGTERM both are flushed to the store or, failing that, the spool.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from exporter.records import LogRecord, StoreColumns
from exporter.store.base import InputLog, StoreRefused, StoreUnavailable
from exporter.store.spool import Spool

_BACKOFF_START_S = 1.0
_BACKOFF_MAX_S = 10.0
_REFUSAL_REPORT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class WriterMetrics:
    records: Counter  # labels: outcome
    spool_bytes: Gauge
    write_duration: Histogram
    refusals: Counter | None = None  # labels: status


class LogWriter:
    def __init__(
        self,
        open_store: Callable[[], InputLog],
        spool: Spool,
        metrics: WriterMetrics,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        max_pending: int = 50_000,
        on_done: Callable[[int], None] | None = None,
    ) -> None:
        self._open_store = open_store
        self._store: InputLog | None = None
        self._spool = spool
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self._pending: deque[LogRecord] = deque()
        # `submit(records, exchanges)` gives a ticket: once every record queued up to and
        # including its own is done with (written, spooled, or counted as lost),
        # `on_done(exchanges)` tells the caller those exchanges are safe.
        self._on_done = on_done
        self._queued = 0  # records ever put in _pending
        self._finished = 0  # of those, records done with
        self._tickets: deque[tuple[int, int]] = deque()  # (queued count to reach, exchanges)
        # Only the writer thread touches the store (a SQLite connection is per thread):
        # layouts asked for by the analysis wait here until the thread applies them.
        self._wanted: dict[str, StoreColumns] = {}
        self._prepared: dict[str, StoreColumns] = {}
        self._condition = threading.Condition()
        self._stopping = False
        self._store_up = True
        self._next_probe = 0.0
        self._backoff = _BACKOFF_START_S
        self._rejected_seen = 0
        self._next_refusal_report = 0.0
        self._outcome = {
            name: metrics.records.labels(name)
            for name in ("written", "spooled", "replayed", "dropped", "failed")
        }
        metrics.spool_bytes.set(spool.bytes)
        self._thread = threading.Thread(target=self._run, name="mlmon-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def prepare(self, columns: StoreColumns) -> None:
        """Tell the store a model's feature layout before its records are written."""
        with self._condition:
            self._wanted[columns.model] = columns

    def submit(self, records: Sequence[LogRecord], exchanges: int = 0) -> None:
        """Queue records for the store; past `max_pending`, they go to the spool now.
        `exchanges`: how many exchanges these records come from (see `on_done`)."""
        with self._condition:
            room = max(self._max_pending - len(self._pending), 0)
            queued = records[:room]
            self._pending.extend(queued)
            self._queued += len(queued)
            if exchanges:
                self._tickets.append((self._queued, exchanges))
            if len(self._pending) >= self._batch_size:
                self._condition.notify()
        if len(records) > room:
            self._to_spool(list(records[room:]))
        self._settle(0)

    def stop(self, timeout: float) -> None:
        """Write what is queued (to the store, else the spool), then stop."""
        with self._condition:
            self._stopping = True
            self._condition.notify()  # write what is pending now, not at the next interval
        self._thread.join(timeout)
        with self._condition:
            leftover = list(self._pending)
            self._pending.clear()
        if leftover:
            self._to_spool(leftover)
        self._settle(len(leftover))

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._store is not None:
                self._store.close()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if self._spool or not self._store_up:
                if batch:
                    self._to_spool(batch)
                self._settle(len(batch))
                self._replay_one()
            elif batch:
                self._write(batch)
                self._settle(len(batch))

    def _next_batch(self) -> list[LogRecord] | None:
        """A full batch, or what came within the flush interval: a transaction per drain
        of the analysis (every 100 ms) cost more CPU than the records themselves."""
        with self._condition:
            deadline = time.monotonic() + self._flush_interval_s
            while len(self._pending) < self._batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            if self._stopping and not self._pending:
                return None
            count = min(len(self._pending), self._batch_size)
            return [self._pending.popleft() for _ in range(count)]

    def _settle(self, finished: int) -> None:
        """Count `finished` more queued records as done with; redeem the tickets met."""
        with self._condition:
            self._finished += finished
            redeemed = 0
            while self._tickets and self._tickets[0][0] <= self._finished:
                redeemed += self._tickets.popleft()[1]
        if redeemed and self._on_done is not None:
            self._on_done(redeemed)

    def _ready_store(self) -> InputLog:
        """The store, opened on this thread; prepared for every model asked for."""
        if self._store is None:
            self._store = self._open_store()  # may raise StoreUnavailable: tried again later
        with self._condition:
            wanted = [c for m, c in self._wanted.items() if self._prepared.get(m) != c]
        for columns in wanted:
            self._store.prepare(columns)  # StoreUnavailable: the batch is spooled, asked again
            self._prepared[columns.model] = columns
        return self._store

    def _write(self, batch: list[LogRecord]) -> None:
        if not self._send(batch, "written"):
            self._to_spool(batch)

    def _replay_one(self) -> None:
        if not self._store_up and time.monotonic() < self._next_probe:
            if not self._stopping:
                time.sleep(min(0.1, self._next_probe - time.monotonic()))
            return
        segment = self._spool.oldest()
        if segment is None:
            self._store_up = True
        elif self._send(segment.records, "replayed"):
            self._spool.remove(segment)
            self._metrics.spool_bytes.set(self._spool.bytes)

    def _send(self, records: list[LogRecord], outcome: str) -> bool:
        """Write records; False when the store is unavailable (the caller keeps them).
        Records the store refuses for good are counted as failed and done with, so
        that they never block the spool."""
        started = time.perf_counter()
        try:
            self._ready_store().write(records)
        except StoreRefused as exc:  # the operator's to fix: said loudly, records kept
            self._report_refusal(exc)
            self._mark_down()
            return False
        except StoreUnavailable:
            self._mark_down()
            return False
        except Exception as exc:
            self._refused(len(records), exc)
            return True
        finally:
            self._metrics.write_duration.observe(time.perf_counter() - started)
        self._outcome[outcome].inc(len(records))
        self._count_rejected()
        self._store_up, self._backoff = True, _BACKOFF_START_S
        return True

    def _to_spool(self, records: list[LogRecord]) -> None:
        stored = self._spool.append(records)
        if stored:
            self._outcome["spooled"].inc(stored)
            self._metrics.spool_bytes.set(self._spool.bytes)
        if stored < len(records):
            self._outcome["dropped"].inc(len(records) - stored)

    def _refused(self, count: int, error: Exception) -> None:
        self._outcome["failed"].inc(count)
        print(f"mlmon-exporter: input log refused {count} records: {error!r}"[:500],
              file=sys.stderr, flush=True)  # fmt: skip

    def _report_refusal(self, error: StoreRefused) -> None:
        if self._metrics.refusals is not None:
            self._metrics.refusals.labels(str(error.status)).inc()
        now = time.monotonic()
        if now >= self._next_refusal_report:  # once a minute: loud, not a flood
            self._next_refusal_report = now + _REFUSAL_REPORT_INTERVAL_S
            print(f"mlmon-exporter: the input log refuses writes; records are spooled until "
                  f"it accepts them: {error}"[:1000], file=sys.stderr, flush=True)  # fmt: skip

    def _mark_down(self) -> None:
        self._store_up = False
        self._next_probe = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    def _count_rejected(self) -> None:
        # A backend that can refuse records for good (Elasticsearch: a mapping conflict)
        # counts them in `rejected`; they are not retried, and exported as "failed".
        rejected = int(getattr(self._store, "rejected", 0))
        if rejected > self._rejected_seen:
            self._outcome["failed"].inc(rejected - self._rejected_seen)
            self._rejected_seen = rejected
