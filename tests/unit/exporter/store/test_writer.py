from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.metrics import make_metrics
from exporter.records import GroundTruth, LogRecord, StoreColumns
from exporter.store.base import StoreUnavailable
from exporter.store.spool import Spool
from exporter.store.writer import LogWriter, WriterMetrics
from tests.unit.exporter.store.test_spool import record


class SwitchableMemoryStore:
    """Test double: an input log that can be switched off, to drive the writer's
    failure paths deterministically (the real stores are failed in integration tests)."""

    def __init__(self) -> None:
        self.up = True
        self.records: dict[str, LogRecord] = {}
        self.order: list[str] = []
        self.prepared: list[StoreColumns] = []
        self.poison: set[str] = set()

    def prepare(self, columns: StoreColumns) -> None:
        self._check()
        self.prepared.append(columns)

    def write(self, records: Sequence[LogRecord]) -> None:
        self._check()
        if any(r.id in self.poison for r in records):
            raise ValueError("a record this store cannot take")
        for r in records:
            if r.id not in self.records:
                self.order.append(r.id)
            self.records[r.id] = r

    def add_ground_truth(self, labels: Sequence[GroundTruth]) -> None:
        self._check()

    def close(self) -> None:
        pass

    def _check(self) -> None:
        if not self.up:
            raise StoreUnavailable("switched off")


def writer_for(store: SwitchableMemoryStore, tmp_path: Path, *, spool_bytes: int = 10_000_000,
               max_pending: int = 50_000) -> tuple[LogWriter, CollectorRegistry]:  # fmt: skip
    registry = CollectorRegistry()
    m = make_metrics(registry)
    writer = LogWriter(
        lambda: store, Spool(tmp_path, spool_bytes),
        WriterMetrics(m.log_records, m.log_spool_bytes, m.log_write_duration),
        flush_interval_s=0.01, max_pending=max_pending,
    )  # fmt: skip
    writer.start()
    return writer, registry


def outcome(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value("mlmon_log_records_total", {"outcome": name}) or 0.0


def wait(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_records_reach_the_store(tmp_path: Path) -> None:
    store = SwitchableMemoryStore()
    writer, registry = writer_for(store, tmp_path)
    writer.prepare(StoreColumns("m", numeric=("x",)))
    writer.submit([record(i) for i in range(5)])
    wait(lambda: len(store.records) == 5)
    writer.stop(5)
    assert store.order == [f"r{i}:0" for i in range(5)]
    assert store.prepared == [StoreColumns("m", numeric=("x",))]
    assert outcome(registry, "written") == 5


def test_while_the_store_is_down_records_are_spooled_then_replayed_in_order(
    tmp_path: Path,
) -> None:
    store = SwitchableMemoryStore()
    writer, registry = writer_for(store, tmp_path)
    store.up = False
    for i in range(0, 300, 30):
        writer.submit([record(j) for j in range(i, i + 30)])
        time.sleep(0.02)
    wait(lambda: outcome(registry, "spooled") == 300)
    assert store.records == {}
    assert (registry.get_sample_value("mlmon_log_spool_bytes") or 0) > 0
    store.up = True
    writer.submit([record(j) for j in range(300, 310)])  # new records queue behind
    wait(lambda: len(store.records) == 310, timeout=15)
    writer.stop(5)
    assert store.order == [f"r{i}:0" for i in range(310)]
    assert outcome(registry, "replayed") == 310
    assert outcome(registry, "dropped") == 0
    assert registry.get_sample_value("mlmon_log_spool_bytes") == 0


def test_past_the_spool_bound_records_are_dropped_and_counted(tmp_path: Path) -> None:
    store = SwitchableMemoryStore()
    store.up = False
    writer, registry = writer_for(store, tmp_path, spool_bytes=3000)
    for i in range(100):
        writer.submit([record(i)])
    writer.stop(5)
    spooled, dropped = outcome(registry, "spooled"), outcome(registry, "dropped")
    assert spooled + dropped == 100
    assert dropped > 0 and spooled > 0


def test_stop_puts_what_is_still_queued_into_the_spool_when_the_store_is_down(
    tmp_path: Path,
) -> None:
    store = SwitchableMemoryStore()
    store.up = False
    writer, _ = writer_for(store, tmp_path)
    writer.submit([record(i) for i in range(50)])
    writer.stop(5)
    restarted = Spool(tmp_path, 10_000_000)
    kept = []
    while (segment := restarted.oldest()) is not None:
        kept.extend(segment.records)
        restarted.remove(segment)
    assert [r.id for r in kept] == [f"r{i}:0" for i in range(50)]


def test_a_batch_the_store_refuses_for_good_is_counted_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    store = SwitchableMemoryStore()
    store.poison = {"r1:0"}
    writer, registry = writer_for(store, tmp_path)
    writer.submit([record(0), record(1)])
    wait(lambda: outcome(registry, "failed") == 2)
    writer.submit([record(2)])
    wait(lambda: "r2:0" in store.records)
    writer.stop(5)
    assert list(store.records) == ["r2:0"]
    assert outcome(registry, "failed") == 2


def test_exchanges_are_settled_only_once_their_records_are_written_or_spooled(
    tmp_path: Path,
) -> None:
    store = SwitchableMemoryStore()
    settled: list[int] = []
    registry = CollectorRegistry()
    m = make_metrics(registry)
    writer = LogWriter(
        lambda: store, Spool(tmp_path, 10_000_000),
        WriterMetrics(m.log_records, m.log_spool_bytes, m.log_write_duration),
        flush_interval_s=0.3, on_done=settled.append,
    )  # fmt: skip
    writer.submit([record(i) for i in range(3)], exchanges=2)
    writer.submit([], exchanges=1)  # an exchange without records waits for those before it
    assert settled == []  # not started: the records are only in memory
    writer.start()
    wait(lambda: sum(settled) == 3)
    assert len(store.records) == 3
    store.up = False
    writer.submit([record(i) for i in range(3, 5)], exchanges=1)
    wait(lambda: sum(settled) == 4)
    assert outcome(registry, "spooled") == 2
    writer.stop(5)
