"""An in-process Alertmanager webhook receiver that records every notification.

Alertmanager POSTs one JSON document per notification (webhook format version 4):
`{"receiver", "status", "alerts": [{"status", "labels", "annotations", "startsAt", ...}],
"groupLabels", "commonLabels", ...}`. Each is kept with its arrival time (wall clock), so
a test or the demo can tell when an alert reached people.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class NotifiedAlert:
    status: str  # "firing" | "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float  # Unix time Prometheus reported the alert firing from

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    received_at: float  # Unix time the receiver got it
    receiver: str
    status: str
    alerts: tuple[NotifiedAlert, ...]
    payload: dict[str, Any]  # the whole document, as sent


def parse_notification(payload: dict[str, Any], received_at: float) -> Notification:
    alerts = tuple(
        NotifiedAlert(
            status=str(alert.get("status", "")),
            labels={str(k): str(v) for k, v in alert.get("labels", {}).items()},
            annotations={str(k): str(v) for k, v in alert.get("annotations", {}).items()},
            starts_at=_timestamp(str(alert.get("startsAt", ""))),
        )
        for alert in payload.get("alerts", [])
    )
    return Notification(
        received_at=received_at,
        receiver=str(payload.get("receiver", "")),
        status=str(payload.get("status", "")),
        alerts=alerts,
        payload=payload,
    )


def _timestamp(text: str) -> float:
    # Alertmanager writes RFC 3339 with nanoseconds ("...T10:00:00.123456789Z"), which
    # datetime.fromisoformat (microseconds at most) refuses: cut to microseconds.
    if not text:
        return float("nan")
    main, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :] if rest else ""
    fraction = f".{digits[:6]}" if digits else ""
    try:
        return datetime.fromisoformat(main + fraction + (zone or "")).timestamp()
    except ValueError:
        return float("nan")


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 (port 0: any free one); `start()` / `stop()`."""

    def __init__(
        self,
        port: int = 0,
        on_notification: Callable[[Notification], None] | None = None,
    ) -> None:
        self._notifications: list[Notification] = []
        self._changed = threading.Condition()
        self._on_notification = on_notification
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    @property
    def notifications(self) -> list[Notification]:
        """A copy, in arrival order."""
        with self._changed:
            return list(self._notifications)

    def wait_for(
        self, predicate: Callable[[Notification], bool], timeout_s: float
    ) -> Notification | None:
        """The first notification (already received or arriving) that matches, or None
        after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for notification in self._notifications:
                    if predicate(notification):
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def _record(self, payload: dict[str, Any]) -> None:
        notification = parse_notification(payload, time.time())
        with self._changed:
            self._notifications.append(notification)
            self._changed.notify_all()
        if self._on_notification is not None:
            self._on_notification(notification)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        record = self._record

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if not 0 < length <= _MAX_BODY:
                    self._answer(400)
                    return
                try:
                    payload = json.loads(self.rfile.read(length))
                except ValueError:
                    self._answer(400)
                    return
                if not isinstance(payload, dict):
                    self._answer(400)
                    return
                record(payload)
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per notification on stderr would drown a test's output

        return Handler
