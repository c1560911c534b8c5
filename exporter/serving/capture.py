"""The serving side of the capture pipe: offer exchanges to the analysis process.

`offer` encodes a frame and adds it to a batch written to the pipe every
HANDOVER_INTERVAL_S (one write for many requests: a write per request cost
more than the encoding). The queue is that batch, the pipe and the event loop's
write buffer, bounded by `queue_max_items` (frames offered but not yet
analysed) and `queue_max_bytes` (bytes not yet taken by the pipe); past either
bound the exchange is dropped and counted, never waited on. A dead analysis
process is restarted, and every exchange it had not settled (analysed, and its
records written, spooled or counted) is counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import os
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized

from exporter.analysis.frames import CapturedExchange, FrameReader
from exporter.analysis.process import Progress, analysis_main
from exporter.metrics import Metrics
from exporter.settings import Settings

_F_SETPIPE_SZ = 1031  # Linux: grow the pipe so bursts do not fill it
_PIPE_BYTES = 1024 * 1024
_WATCH_INTERVAL_S = 1.0
HANDOVER_INTERVAL_S = 0.05
_HANDOVER_BATCH_BYTES = 256 * 1024


class _Feedback(asyncio.Protocol):
    """Messages from the analysis process: model versions and inferred schemas."""

    def __init__(self, versions: dict[str, str], inferred_schemas: dict[str, str]) -> None:
        self._versions = versions
        self._inferred_schemas = inferred_schemas
        self._reader = FrameReader()

    def data_received(self, data: bytes) -> None:
        for kind, model, text in self._reader.feed(data):
            if kind == "version":
                self._versions[model] = text
            elif kind == "schema":
                self._inferred_schemas[model] = text


class CaptureChannel:
    def __init__(self, settings: Settings, metrics: Metrics, versions: dict[str, str]) -> None:
        self._settings = settings
        self._metrics = metrics
        self._versions = versions
        self.inferred_schemas: dict[str, str] = {}
        self._context = multiprocessing.get_context("spawn")
        self._processed: Synchronized[int] = self._context.Value("q", 0)
        # Read without the lock: an aligned 64-bit read is atomic, and a stale count
        # only makes the item bound a request or two stricter.
        self._processed_count = self._processed.get_obj()
        # Exchanges whose records are safe (or counted): what a crash cannot lose.
        self._settled: Synchronized[int] = self._context.Value("q", 0)
        self._sent = 0
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._handover: asyncio.TimerHandle | None = None
        self._process: BaseProcess | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._feed: asyncio.ReadTransport | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._dropped = {
            reason: metrics.queue_dropped.labels(reason)
            for reason in ("items", "bytes", "analysis_down")
        }

    async def start(self) -> None:
        await self._spawn()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self, timeout: float) -> None:
        """Let the analysis process finish what is queued (up to `timeout` s), then end it."""
        if self._watcher is not None:
            self._watcher.cancel()
        await self._close_pipes(timeout)

    def offer(self, item: CapturedExchange) -> bool:
        """Whether the exchange was taken (else it is dropped, and counted)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._dropped["analysis_down"].inc()
            return False
        if self._sent - self._processed_count.value >= self._settings.queue_max_items:
            self._dropped["items"].inc()
            return False
        frame = item.frame()
        queued = self._batch_bytes + len(frame)
        if transport.get_write_buffer_size() + queued > self._settings.queue_max_bytes:
            self._dropped["bytes"].inc()
            return False
        self._batch.append(frame)
        self._batch_bytes = queued
        self._sent += 1
        if queued >= _HANDOVER_BATCH_BYTES:
            self._hand_over()
        elif self._handover is None:
            self._handover = asyncio.get_running_loop().call_later(
                HANDOVER_INTERVAL_S, self._hand_over
            )
        return True

    def _hand_over(self) -> None:
        if self._handover is not None:
            self._handover.cancel()
            self._handover = None
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        transport = self._transport
        # A closing pipe means the analysis process died: these frames are in `_sent`, so
        # the watcher counts them with the rest it never settled.
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(batch))

    @property
    def depth(self) -> int:
        """Exchanges handed over and not yet analysed."""
        return max(self._sent - int(self._processed.value), 0)

    @property
    def unsettled(self) -> int:
        """Exchanges handed over whose records are not yet written or spooled."""
        return max(self._sent - int(self._settled.value), 0)

    def refresh_gauges(self) -> None:
        self._metrics.queue_depth.set(self.depth)

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        exchange_reader, exchange_writer = _pipe()
        feedback_reader, feedback_writer = _pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(exchange_writer.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        for counter in (self._processed, self._settled):
            with counter.get_lock():
                counter.value = 0
        self._sent = 0
        process = self._context.Process(
            target=_child_main,
            name="mlmon-analysis",
            daemon=True,
            args=(
                self._settings,
                exchange_reader,
                feedback_writer,
                Progress(self._processed, self._settled),
            ),
        )
        process.start()
        exchange_reader.close()
        feedback_writer.close()
        self._process = process
        self._transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, _own_file(exchange_writer, "wb")
        )
        self._feed, _ = await loop.connect_read_pipe(
            lambda: _Feedback(self._versions, self.inferred_schemas),
            _own_file(feedback_reader, "rb"),
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_INTERVAL_S)
            process = self._process
            if process is not None and not process.is_alive():
                lost = self.unsettled
                if lost:
                    self._dropped["analysis_down"].inc(lost)
                self._batch, self._batch_bytes = [], 0  # counted with the rest
                await self._close_pipes(0)
                await self._spawn()

    async def _close_pipes(self, timeout: float) -> None:
        self._hand_over()
        transport, process = self._transport, self._process
        self._transport = None
        if transport is not None:
            transport.close()  # flushes what is buffered, then the child reads EOF
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while process is not None and process.is_alive() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if process is not None and process.is_alive():
            process.terminate()
            await loop.run_in_executor(None, process.join, 5)
        if self._feed is not None:
            self._feed.close()


def _child_main(
    settings: Settings, exchanges: Connection, versions: Connection, progress: Progress
) -> None:
    analysis_main(settings, _detach(exchanges), _detach(versions), progress)


def _pipe() -> tuple[Connection, Connection]:
    """(reading end, writing end)."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    return reader, writer


def _detach(connection: Connection) -> int:
    fd = os.dup(connection.fileno())
    connection.close()
    return fd


def _own_file(connection: Connection, mode: str) -> object:
    fd = _detach(connection)
    os.set_blocking(fd, False)
    return os.fdopen(fd, mode, buffering=0)
