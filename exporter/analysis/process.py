"""The analysis process: everything about an exchange that the client need not wait for.

It runs apart from the serving process so that parsing, features and log writes
never hold the serving event loop (in one process they share a GIL, which showed
up as milliseconds of p99 latency). Exchanges arrive as frames on a pipe; model
versions and inferred schemas go back on a second pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import NamedTuple

from prometheus_client import CollectorRegistry

from exporter.analysis.analyzer import Analyzer, report_internal_error
from exporter.analysis.frames import CapturedExchange, FrameReader, encode_frame
from exporter.analysis.records import RecordPolicy, build_records, store_columns
from exporter.analysis.schemas import FeatureStage, SchemaSet, schemaless_hash_key
from exporter.metrics import make_metrics
from exporter.records import LogRecord
from exporter.schema import schema_to_yaml
from exporter.settings import Settings
from exporter.store import open_store
from exporter.store.spool import Spool, claim_directory
from exporter.store.writer import LogWriter, WriterMetrics

DRAIN_INTERVAL_S = 0.1
SCHEMA_FEEDBACK_INTERVAL_S = 2.0
_INFERRED_HEADER = (
    "# Inferred by mlmon-exporter from live traffic: review types, ranges, categories\n"
    "# and nullable, then pass it with --schema (or infer one from training data with\n"
    "# mlmon-stats infer-schema).\n"
)
ANALYSIS_NICENESS = 10
_READ_BYTES = 4 * 1024 * 1024


class Progress(NamedTuple):
    """Counters shared with the serving process, which bounds its hand-over by the first
    and, should this process die, counts what the second does not cover as lost."""

    analysed: Synchronized[int]  # exchanges taken off the pipe and analysed
    settled: Synchronized[int]  # of those, exchanges whose records are written or spooled


def _add(counter: Synchronized[int], amount: int) -> None:
    with counter.get_lock():
        counter.value += amount


def analysis_main(
    settings: Settings, exchanges_fd: int, feedback_fd: int, progress: Progress
) -> None:
    """Entry point of the analysis process: read until the serving side closes the pipe.

    It wakes at most every DRAIN_INTERVAL_S and analyses everything that arrived
    meanwhile: a wake-up per request would cost more CPU than the analysis itself.
    What the serving side shows from here (model versions, inferred schemas) goes
    back as messages on `feedback_fd`.
    """
    # The serving process decides when to stop (by closing the pipe); a Ctrl-C sent
    # to the whole process group must not lose what is still queued.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # When CPU is short, serving requests comes first; analysis can wait.
    os.nice(ANALYSIS_NICENESS)
    metrics = make_metrics(CollectorRegistry())  # values go to the multiprocess files
    schemas = SchemaSet.from_settings(settings)
    analyzer = Analyzer(settings, metrics, FeatureStage(schemas))

    writer = LogWriter(
        lambda: open_store(settings),
        Spool(claim_directory(settings.spool_dir), settings.spool_max_bytes),
        WriterMetrics(
            metrics.log_records,
            metrics.log_spool_bytes,
            metrics.log_write_duration,
            metrics.log_store_refusals,
        ),
        on_done=lambda exchanges: _add(progress.settled, exchanges),
    )
    writer.start()
    policy = RecordPolicy(
        sample_rate=settings.log_sample_rate,
        record_max_bytes=settings.record_max_bytes,
        default_version=settings.model_version,
        secret_key=schemas.hash_key or schemaless_hash_key(settings),
    )
    pipeline = _Pipeline(analyzer, schemas, writer, policy)
    feedback = Feedback(feedback_fd)
    reader = FrameReader()
    while True:
        # Wake without traffic too: a schema inferred from the last batch must still be
        # sent once its interval has passed.
        if not select.select([exchanges_fd], [], [], SCHEMA_FEEDBACK_INTERVAL_S)[0]:
            feedback.send(analyzer)
            continue
        data = os.read(exchanges_fd, _READ_BYTES)
        if not data:
            break
        items = list(map(CapturedExchange._make, reader.feed(data)))
        if items:
            started = time.perf_counter()
            writer.submit(pipeline.records(items), len(items))
            metrics.worker_duration.observe(time.perf_counter() - started)
            _add(progress.analysed, len(items))
        feedback.send(analyzer)
        time.sleep(DRAIN_INTERVAL_S)
    os.close(exchanges_fd)
    writer.stop(settings.shutdown_timeout_s)
    feedback.close()


@dataclass(frozen=True)
class _Pipeline:
    """Exchanges -> records: the analysis, then the records the policy keeps."""

    analyzer: Analyzer
    schemas: SchemaSet
    writer: LogWriter
    policy: RecordPolicy

    def records(self, items: list[CapturedExchange]) -> list[LogRecord]:
        """The records of a drained batch. Should the batch fail, each exchange is analysed
        on its own, so that one that trips a bug costs only its own records (counted)."""
        try:
            return self._records(items)
        except Exception:
            pass
        records: list[LogRecord] = []
        for item in items:
            try:
                records.extend(self._records([item]))
            except Exception:
                self.analyzer.count_internal_error(item, "analysing")
        return records

    def _records(self, items: list[CapturedExchange]) -> list[LogRecord]:
        batch = self.analyzer.process(items)
        for model in {*batch.features, *batch.shadow_features}:
            columns = store_columns(self.schemas, model)
            if columns is not None:
                self.writer.prepare(columns)
        return build_records(batch, self.schemas, self.analyzer.versions, self.policy)


class Feedback:
    """Tells the serving process what it shows: model versions, inferred schemas."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._versions: dict[str, str] = {}
        self._next_schemas = 0.0

    def send(self, analyzer: Analyzer) -> None:
        try:
            self._send(analyzer)
        except Exception:  # what the serving side shows can wait; the analysis goes on
            report_internal_error("sending model versions and schemas")

    def _send(self, analyzer: Analyzer) -> None:
        messages: list[tuple[str, str, str]] = [
            ("version", model, version)
            for model, version in analyzer.versions.items()
            if self._versions.get(model) != version
        ]
        self._versions.update(analyzer.versions)
        now = time.monotonic()
        if now >= self._next_schemas:
            self._next_schemas = now + SCHEMA_FEEDBACK_INTERVAL_S
            for model, schema in analyzer.features.take_inferred().items():
                messages.append(("schema", model, schema_to_yaml(schema, _INFERRED_HEADER)))
        if messages:
            with contextlib.suppress(OSError):  # the serving side has gone: nobody to tell
                os.write(self._fd, b"".join(encode_frame(m) for m in messages))

    def close(self) -> None:
        os.close(self._fd)
