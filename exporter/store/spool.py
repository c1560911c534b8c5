"""A bounded on-disk spool: where records wait while the store is down or slow.

Records are appended to segment files (JSON lines, fsync'd per batch) and replayed
oldest segment first; a segment is deleted only after the store accepted all of it.
A crash between the store's acceptance and the deletion replays that segment again,
which the store absorbs because writes are idempotent by record id. Segments found
at start-up (a restart, even after SIGKILL) are replayed. Past `max_bytes` nothing
more is appended: the caller counts those records as dropped.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.records import LogRecord, PredictionValue

_SEGMENT_GLOB = "segment-*.jsonl"
# Held open for the life of the process that claimed the directory.
_claims: list[int] = []


def claim_directory(root: str | Path, limit: int = 64) -> Path:
    """A spool directory of its own under `root` for this process: with several server
    processes each has one, and a restart claims (and so replays) the same ones."""
    base = Path(root)
    for index in range(limit):
        directory = base / str(index)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claims.append(fd)
        return directory
    raise OSError(f"{base}: all {limit} spool directories are in use")


@dataclass(frozen=True)
class Segment:
    path: Path
    records: list[LogRecord]


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, segment_bytes: int = 4 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        existing = sorted(self.directory.glob(_SEGMENT_GLOB))
        self._bytes = sum(p.stat().st_size for p in existing)
        self._next_sequence = _sequence(existing[-1]) + 1 if existing else 0
        self._current: Path | None = None  # the segment being appended to

    @property
    def bytes(self) -> int:
        return self._bytes

    def __bool__(self) -> bool:
        return self._bytes > 0

    def append(self, records: Sequence[LogRecord]) -> int:
        """Store records durably, oldest first, as many as the bound allows; returns how
        many were stored (the rest the caller counts as dropped)."""
        lines = [(json.dumps(_encode(r), separators=(",", ":")) + "\n").encode() for r in records]
        with self._lock:
            room = self.max_bytes - self._bytes
            fitting = 0
            for line in lines:
                if len(line) > room:
                    break
                room -= len(line)
                fitting += 1
            if not fitting:
                return 0
            payload = b"".join(lines[:fitting])
            current = self._current
            if current is None or current.stat().st_size >= self.segment_bytes:
                current = self._current = self._new_segment()
            with current.open("ab") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            self._bytes += len(payload)
            return fitting

    def oldest(self) -> Segment | None:
        """The oldest segment with its records, or None when the spool is empty. The
        segment being appended to is closed first, so appends go to a new one."""
        with self._lock:
            segments = sorted(self.directory.glob(_SEGMENT_GLOB))
            if not segments:
                return None
            path = segments[0]
            if path == self._current:
                self._current = None
        records = []
        with path.open("rb") as source:
            for line in source:
                try:
                    records.append(_decode(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash mid-append: the rest is intact
        return Segment(path, records)

    def remove(self, segment: Segment) -> None:
        """The store has all of this segment's records."""
        with self._lock:
            size = segment.path.stat().st_size
            segment.path.unlink()
            self._bytes -= size

    def _new_segment(self) -> Path:
        path = self.directory / f"segment-{self._next_sequence:012d}.jsonl"
        self._next_sequence += 1
        return path


def _sequence(path: Path) -> int:
    return int(path.stem.removeprefix("segment-"))


def _encode(record: LogRecord) -> dict[str, Any]:
    return {"id": record.id, **record.to_document()}


def _decode(document: dict[str, Any]) -> LogRecord:
    prediction = document.get("prediction")
    return LogRecord(
        id=document["id"],
        timestamp=document["@timestamp"],
        request_id=document["request_id"],
        row=document["row"],
        model=document["model"],
        model_version=document["model_version"],
        protocol=document["protocol"],
        status=document["status"],
        latency_ms=document["latency_ms"],
        features=document["features"],
        issues=document["issues"],
        prediction=PredictionValue(**prediction) if prediction is not None else None,
        label=document.get("label"),
        role=document.get("role", "primary"),
        candidate=document.get("candidate", ""),
    )
