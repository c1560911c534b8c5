"""`examples.traffic` in a background thread, with the drift onset visible while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from examples.traffic import TrafficConfig, TrafficSummary, run_traffic

# run_traffic logs this the moment it sends its first drifted request, right after noting
# the time in its summary; the summary itself is only returned at the end of the run.
_DRIFT_MESSAGE = "drift started"


class TrafficRun:
    """`start()` sends traffic until the config's bounds or `stop()`."""

    def __init__(self, config: TrafficConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._log = log
        self._stop = threading.Event()
        self._onset: float | None = None
        self._summary: TrafficSummary | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> TrafficRun:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def drift_onset(self) -> float | None:
        """Unix time of the first drifted request, once it was sent."""
        if self._summary is not None and self._summary.drift_started_at is not None:
            return self._summary.drift_started_at
        return self._onset

    @property
    def summary(self) -> TrafficSummary | None:
        """The generator's summary, once it has finished."""
        return self._summary

    def wait_for_drift(self, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while self.drift_onset is None and self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.drift_onset

    def stop(self, timeout_s: float = 10.0) -> TrafficSummary | None:
        """Stops sending (each request is bounded by the config's timeout) and returns the
        summary; raises what the generator raised, if anything."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s + self.config.timeout_s)
        if self._error is not None:
            raise self._error
        return self._summary

    def _run(self) -> None:
        try:
            self._summary = run_traffic(self.config, self._stop, self._on_message)
        except BaseException as exc:  # handed to stop(), so it is not lost in the thread
            self._error = exc

    def _on_message(self, message: str) -> None:
        if self._onset is None and message.startswith(_DRIFT_MESSAGE):
            self._onset = time.time()
        if self._log is not None:
            self._log(f"traffic: {message}")
