"""The demo's live phase: refresh the summary on a fixed cadence, remember when drift was
first detected and which alerts fired, and print the final summary.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from examples.demo_config import SHORTEST_WINDOW, DemoConfig
from examples.demo_probe import (
    Alert,
    Scrape,
    ServiceFigures,
    UnavailableError,
    alertmanager_link,
    detected_features,
    fetch_alerts,
    fetch_report,
    prometheus_link,
    scrape_sidecar,
    service_figures,
)
from examples.demo_view import CLEAR, Snapshot, render
from examples.drift import DEFAULT_SHIFT_STD
from examples.stack import Stack

_EVENTS_SHOWN = 5


class Live:
    def __init__(self, config: DemoConfig, *, tty: bool, say: Callable[[str], None]) -> None:
        self.config = config
        self.tty = tty
        self.say = say
        self.started = 0.0  # monotonic time the traffic started
        self._live = False
        self._events: deque[str] = deque(maxlen=_EVENTS_SHOWN)
        self._scrape: Scrape | None = None
        self._report: Mapping[str, Any] | None = None  # the latest one read
        self._first_detected: dict[str, float] = {}  # feature -> elapsed s
        self._fired: dict[str, float] = {}  # alert key -> elapsed s first seen firing
        self._links: list[tuple[str, str]] | None = None  # (label, URL) to open

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def event(self, message: str) -> None:
        """Progress lines of the stack and the traffic: printed as they come, except while
        a terminal is being redrawn, where they are kept for the next block."""
        if self._live and self.tty:
            self._events.append(f"+{self.elapsed:.0f} s {message}")
        else:
            print(message, flush=True)

    def run(self, stack: Stack) -> None:
        """Until DEMO_SECONDS have passed (forever without); StackError when a component
        exits, KeyboardInterrupt on Ctrl-C / SIGTERM."""
        self.started = time.monotonic()
        self._live = True
        limit = self.config.seconds
        tick = 0
        while True:
            self._show(self._snapshot(stack))
            stack.check_alive()
            if limit is not None and self.elapsed >= limit:
                return
            tick += 1
            due = tick * self.config.refresh_s
            if limit is not None:
                due = min(due, limit)
            time.sleep(max(0.0, self.started + due - time.monotonic()))

    def finish(self, stack: Stack, outcome: BaseException | None) -> None:
        self._live = False
        if isinstance(outcome, KeyboardInterrupt):
            self.say(f"stopping on {str(outcome) or 'SIGINT'}")
        elif outcome is not None:
            self.say(f"stopping: {outcome}")
        elapsed = self.elapsed
        summary = None
        if stack.traffic is not None:
            try:
                summary = stack.traffic.stop()
            except Exception as exc:  # the generator's own failure: reported, not fatal here
                self.say(f"traffic failed: {exc!r}")
        self._read_report(stack)  # the last evaluation, with everything still up
        alerts = self._read_alerts(stack)
        self.say(f"---- summary after {elapsed:.0f} s of traffic ----")
        if summary is not None:
            self.say(summary.line())
        onset = self._onset(stack)
        if onset is None:
            self.say("drift: none injected")
        else:
            self.say(f"drift injected on {self.config.drift_feature} at +{onset:.1f} s")
        for feature, at in sorted(self._first_detected.items(), key=lambda item: item[1]):
            after = f" ({at - onset:.1f} s after onset)" if onset is not None else ""
            self.say(f"drift first detected on {feature} at +{at:.1f} s{after}")
        if stack.urls.prometheus is None:
            self.say("alerts: Prometheus not installed (apt-get install prometheus)")
        elif isinstance(alerts, str) and not self._fired:
            self.say(f"alerts: unavailable ({alerts})")
        else:
            fired = [
                f"{key} at +{at:.0f} s" for key, at in sorted(self._fired.items(), key=_second)
            ]
            self.say(f"alerts fired: {', '.join(fired) or 'none'}")
            notifications = stack.notifications
            names = sorted({a.name for n in notifications for a in n.alerts})
            self.say(
                f"Alertmanager notified the webhook {len(notifications)} times"
                + (f" ({', '.join(names)})" if names else "")
            )
        drifted = detected_features(self._report)
        self.say(f"drift detected on: {', '.join(drifted) or 'none'}")

    def _snapshot(self, stack: Stack) -> Snapshot:
        urls = stack.urls
        service: ServiceFigures | str | None
        try:
            scrape = scrape_sidecar(f"{urls.sidecar}/metrics", time.monotonic())
        except UnavailableError as exc:
            service = str(exc)
        else:
            previous, self._scrape = self._scrape, scrape
            service = service_figures(previous, scrape) if previous is not None else None
        report = self._read_report(stack)
        alerts = self._read_alerts(stack)
        return Snapshot(
            elapsed_s=self.elapsed,
            duration_s=self.config.seconds,
            drift_plan=self._plan(),
            drift_onset_s=self._onset(stack),
            window=SHORTEST_WINDOW,
            service=service,
            report=report,
            alerts=alerts,
            notifications=len(stack.notifications),
            fired_at=dict(self._fired),
            urls=self._urls(stack),
        )

    def _urls(self, stack: Stack) -> list[tuple[str, str]]:
        """Probed once: which pages exist depends on how Prometheus and Alertmanager were
        built, and the components are up (ready) by the time the summary shows."""
        if self._links is None:
            urls = stack.urls
            links = [("stats page", f"{urls.stats}/")]
            links.append(("sidecar metrics", f"{urls.sidecar}/metrics"))
            links.append(("stats report (JSON)", f"{urls.stats}/api/v1/report"))
            if urls.prometheus is not None:
                links.append(prometheus_link(urls.prometheus))
            if urls.alertmanager is not None:
                links.append(alertmanager_link(urls.alertmanager))
            self._links = links
        return self._links

    def _read_report(self, stack: Stack) -> Mapping[str, Any] | str | None:
        try:
            report = fetch_report(stack.urls.stats, stack.model, SHORTEST_WINDOW)
        except UnavailableError as exc:
            return str(exc)
        if report is not None:
            self._report = report
            for feature in detected_features(report):
                self._first_detected.setdefault(feature, self.elapsed)
        return report

    def _read_alerts(self, stack: Stack) -> list[Alert] | str | None:
        if stack.urls.prometheus is None:
            return None
        try:
            alerts = fetch_alerts(stack.urls.prometheus)
        except UnavailableError as exc:
            return str(exc)
        for alert in alerts:
            if alert.state == "firing":
                self._fired.setdefault(alert.key, self.elapsed)
        return alerts

    def _onset(self, stack: Stack) -> float | None:
        """Elapsed seconds at the first drifted request."""
        onset = stack.drift_onset
        if onset is None:
            return None
        return onset - time.time() + self.elapsed

    def _plan(self) -> str:
        after = self.config.drift_after_s
        if after is None:
            return "none (DEMO_DRIFT_AFTER=off)"
        return f"{self.config.drift_feature} {DEFAULT_SHIFT_STD:+g} std after {after:g} s"

    def _show(self, snapshot: Snapshot) -> None:
        text = render(snapshot)
        if self.tty:
            events = ["recent:", *(f"  {e}" for e in self._events)] if self._events else []
            sys.stdout.write(CLEAR + "\n".join([text, *events]) + "\n")
            sys.stdout.flush()
        else:
            stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
            print(f"---- {stamp} ----\n{text}", flush=True)


def _second(item: tuple[str, float]) -> float:
    return item[1]
