"""Which route answers each model's traffic: the primary (with its canary share), or the
fallback once switched to, and why.

The state is a small JSON file under spool_dir, replaced atomically on every switch, so
it survives a restart. Every server process reads it: a switch made in one worker (an
admin call, its circuit breaker) reaches the others within POLL_INTERVAL_S; writes take
an flock, so two processes switching at once do not lose one another's change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.metrics import Metrics
from exporter.serving.targets import FALLBACK, PRIMARY
from exporter.tally import LabelCap

STATE_FILE = "routes.json"
POLL_INTERVAL_S = 0.5
_FORMAT = 1
REASONS = ("admin", "alert", "alert_resolved", "circuit_breaker", "circuit_recovered")


@dataclass(frozen=True)
class Switch:
    model: str
    from_route: str
    to_route: str
    reason: str


@dataclass(frozen=True)
class ModelRoute:
    """A model on the fallback: why, since when, and the alerts holding it there."""

    reason: str
    since: float
    alerts: tuple[str, ...] = ()


class RouteState:
    def __init__(self, directory: str | Path, metrics: Metrics, model_label: LabelCap) -> None:
        self._path = Path(directory) / STATE_FILE
        self._lock_path = Path(directory) / f"{STATE_FILE}.lock"
        self._metrics = metrics
        self._label = model_label
        self._on_fallback: dict[str, ModelRoute] = {}
        self._shown: set[str] = set()  # models whose gauges are set
        self._stamp: tuple[int, int] | None = None
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.refresh()

    def on_fallback(self, model: str) -> ModelRoute | None:
        """The request path's look-up: one dictionary read."""
        return self._on_fallback.get(model)

    def active(self, model: str) -> str:
        return FALLBACK if model in self._on_fallback else PRIMARY

    def snapshot(self) -> dict[str, Any]:
        return {
            "models": {
                model: {
                    "route": FALLBACK,
                    "reason": r.reason,
                    "since": r.since,
                    "alerts": list(r.alerts),
                }
                for model, r in sorted(self._on_fallback.items())
            },
            "default": PRIMARY,
        }

    def show(self, model: str) -> None:
        """Export the model's route gauges (first request of a model, every switch)."""
        label = self._label(model)
        active = self.active(model)
        for route in (PRIMARY, FALLBACK):
            self._metrics.route_active.labels(label, route).set(1 if route == active else 0)
        self._shown.add(model)

    def switch(
        self, model: str, to_route: str, reason: str, alerts: tuple[str, ...] | None = None
    ) -> Switch | None:
        """Move the model's traffic (read, change, write under the file lock); None when it
        already was there (only the alerts holding it are updated then). Requests already
        on their way finish where they went: a switch neither drops nor retries them."""
        with self._locked():
            self._load()
            current = self._on_fallback.get(model)
            from_route = FALLBACK if current is not None else PRIMARY
            if to_route == FALLBACK:
                held = alerts if alerts is not None else (current.alerts if current else ())
                # What moved it there stays the reason: it decides what may move it back.
                if current is None:
                    self._on_fallback[model] = ModelRoute(reason, time.time(), held)
                else:
                    self._on_fallback[model] = ModelRoute(current.reason, current.since, held)
            else:
                self._on_fallback.pop(model, None)
            self._save()
        if from_route == to_route:
            return None
        self._metrics.route_switches.labels(self._label(model), from_route, to_route, reason).inc()
        self.show(model)
        return Switch(model, from_route, to_route, reason)

    def refresh(self) -> None:
        """Reload the file if another process (or a restart) changed it."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp == self._stamp and stamp is not None:
            return
        before = dict(self._on_fallback)
        self._load()
        for model in set(before) | set(self._on_fallback) | self._shown:
            if (model in before) != (model in self._on_fallback) or model not in self._shown:
                self.show(model)

    def _load(self) -> None:
        try:
            # Stat first: a file replaced in between is read again at the next poll.
            stat = self._path.stat()
            raw = self._path.read_bytes()
        except FileNotFoundError:
            self._on_fallback, self._stamp = {}, None
            return
        self._stamp = (stat.st_mtime_ns, stat.st_ino)
        try:
            document = json.loads(raw)
            models = document["models"]
            self._on_fallback = {
                str(model): ModelRoute(
                    str(entry["reason"]), float(entry["since"]), tuple(entry.get("alerts", ()))
                )
                for model, entry in models.items()
                if entry.get("route") == FALLBACK
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Written only by os.replace of a whole file: unreadable means edited by hand.
            print(f"mlmon-exporter: error: {self._path}: unreadable route state, every model "
                  f"on its primary: {exc}", file=sys.stderr, flush=True)  # fmt: skip
            self._on_fallback = {}

    def _save(self) -> None:
        document = {"format": _FORMAT, **self.snapshot()}
        temporary = self._path.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self._path)
        stat = self._path.stat()
        self._stamp = (stat.st_mtime_ns, stat.st_ino)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
