"""The analysis process: everything about an exchange that the client need not wait for.

It runs apart from the serving process so that parsing, features and log writes
never hold the serving event loop (in one process they share a GIL, which showed
up as milliseconds of p99 latency). Exchanges arrive as length-prefixed frames on
a pipe; model versions learnt from responses go back on a second pipe.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import signal
import struct
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from prometheus_client import CollectorRegistry

from exporter import protocols
from exporter.metrics import LabelCap, Metrics, make_metrics
from exporter.protocols.base import AdapterConfig, Exchange, ParsedExchange, PayloadError
from exporter.schema_yaml import schema_to_yaml
from exporter.schemas import FeatureStage, SchemaSet
from exporter.settings import Settings
from exporter.upstream import Headers

FRAME_HEADER = struct.Struct("<I")
DRAIN_INTERVAL_S = 0.05
SCHEMA_FEEDBACK_INTERVAL_S = 2.0
_INFERRED_HEADER = (
    "# Inferred by mlmon-exporter from live traffic: review types, ranges, categories\n"
    "# and nullable, then pass it with --schema (or infer one from training data with\n"
    "# mlmon-stats infer-schema).\n"
)
ANALYSIS_NICENESS = 10
_READ_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CapturedExchange:
    received_at: float
    request_id: str
    method: str
    path: str
    query: bytes
    protocol: str
    path_model: str | None
    path_version: str | None
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    response_body: bytes
    latency_s: float
    # "request" or "response" when that body was above capture_max_bytes and left out
    oversize: str = ""

    def frame(self) -> bytes:
        fields = (
            self.received_at, self.request_id, self.method, self.path, self.query,
            self.protocol, self.path_model, self.path_version, self.request_headers,
            self.request_body, self.status, self.response_headers, self.response_body,
            self.latency_s, self.oversize,
        )  # fmt: skip
        return encode_frame(fields)


def encode_frame(message: Any) -> bytes:
    """A length-prefixed pickle: the framing of both pipes between the processes."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


class FrameReader:
    """Splits bytes read from a pipe back into the messages `encode_frame` wrote."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages: list[Any] = []
        offset = 0
        while len(buffer) - offset >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + FRAME_HEADER.size + size
            if len(buffer) < end:
                break
            # Only the two processes of this sidecar write these pipes.
            messages.append(pickle.loads(buffer[offset + FRAME_HEADER.size : end]))
            offset = end
        del buffer[:offset]
        return messages


class Analyzer:
    """Runs the protocol adapter on one exchange and records what it found."""

    def __init__(self, settings: Settings, metrics: Metrics, features: FeatureStage) -> None:
        self._settings = settings
        self._metrics = metrics
        self.features = features
        self.versions: dict[str, str] = {}
        # Feature names in issues can come from clients (unexpected fields): bounded.
        self._feature_label = LabelCap(settings.max_label_values * 4)
        self._model_label = LabelCap(settings.max_label_values, settings.models)
        self._class_label = LabelCap(settings.max_label_values, settings.prediction.classes)
        p, g = settings.prediction, settings.generic
        self._adapter_config = AdapterConfig(
            class_names=p.classes,
            task=p.task,
            threshold=p.threshold,
            rows_selector=g.rows,
            predictions_selector=g.predictions,
            model_selector=g.model,
            version_selector=g.version,
        )

    def process(self, item: CapturedExchange) -> ParsedExchange | None:
        m = self._metrics
        if item.oversize:
            m.payload_parse_errors.labels(item.protocol, item.oversize, "too_large").inc()
            return None
        exchange = Exchange(
            method=item.method,
            path=item.path,
            query=item.query.decode("latin-1"),
            request_headers=_decode_headers(item.request_headers),
            request_body=item.request_body,
            status=item.status,
            response_headers=_decode_headers(item.response_headers),
            response_body=item.response_body,
        )
        try:
            parsed = protocols.parse(item.protocol, exchange, self._adapter_config)
        except PayloadError as error:
            m.payload_parse_errors.labels(item.protocol, error.part, error.reason).inc()
            return None
        if parsed.response_error is not None:
            reason = parsed.response_error.reason
            m.payload_parse_errors.labels(item.protocol, "response", reason).inc()
        self._record(item, parsed)
        return parsed

    def _record(self, item: CapturedExchange, parsed: ParsedExchange) -> None:
        m = self._metrics
        model = self._model_label(
            item.path_model or parsed.model or self._settings.model or "unknown"
        )
        version = item.path_version or parsed.model_version or self._settings.model_version
        if version and self.versions.get(model) != version:
            previous = self.versions.get(model)
            if previous is not None:
                m.model_info.remove(model, previous)
            self.versions[model] = version
            m.model_info.labels(model, version).set(1)
        batch = self.features.run(model, parsed.rows)
        if batch is not None:
            for code, count in batch.issue_counts().items():
                kind, _, feature = code.partition(":")
                m.feature_issues.labels(model, self._feature_label(feature), kind).inc(count)
        if parsed.rows or parsed.tensors:
            m.batch_size.labels(model).observe(
                len(parsed.rows) or max((t.shape[0] for t in parsed.tensors if t.shape), default=1)
            )
        value_hist = m.prediction_value.labels(model)
        confidence_hist = m.prediction_confidence.labels(model)
        for prediction in parsed.predictions:
            numbers = [x for x in (prediction.value, prediction.score) if x is not None]
            if any(not math.isfinite(x) for x in numbers):
                m.non_finite_predictions.labels(model).inc()
                continue
            if prediction.label is not None:
                m.predictions.labels(model, self._class_label(prediction.label)).inc()
            if prediction.value is not None:
                value_hist.observe(prediction.value)
            if prediction.score is not None:
                confidence_hist.observe(prediction.score)


def analysis_main(
    settings: Settings, exchanges_fd: int, feedback_fd: int, processed: Synchronized[int]
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
    analyzer = Analyzer(settings, metrics, FeatureStage(SchemaSet.from_settings(settings)))
    feedback = Feedback(feedback_fd)
    reader = FrameReader()
    while data := os.read(exchanges_fd, _READ_BYTES):
        items = [CapturedExchange(*fields) for fields in reader.feed(data)]
        for item in items:
            started = time.perf_counter()
            try:
                analyzer.process(item)
            except Exception:  # a bug in an adapter must not stop the analysis
                metrics.payload_parse_errors.labels(
                    item.protocol, "request", "internal_error"
                ).inc()
            metrics.worker_duration.observe(time.perf_counter() - started)
        with processed.get_lock():
            processed.value += len(items)
        feedback.send(analyzer)
        time.sleep(DRAIN_INTERVAL_S)
    os.close(exchanges_fd)
    feedback.close()


class Feedback:
    """Tells the serving process what it shows: model versions, inferred schemas."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._versions: dict[str, str] = {}
        self._next_schemas = 0.0

    def send(self, analyzer: Analyzer) -> None:
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


def _decode_headers(headers: Headers) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
