"""A circuit breaker on a model's primary: too many errors and timeouts move its traffic to
the fallback; after a cool-down, trial requests go to the primary again, and enough of
them succeeding in a row move the traffic back.

Outcomes are counted in one-second buckets over a sliding window, so recording one costs
a few additions whatever the traffic.
"""

from __future__ import annotations

import collections
import math
from enum import Enum

from exporter.release_settings import BreakerSettings


class BreakerState(Enum):
    CLOSED = "closed"  # the primary answers
    OPEN = "open"  # the fallback answers until the cool-down is over
    TRIAL = "trial"  # one request at a time goes to the primary to try it


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, n, bad]
        self._requests = 0
        self._failures = 0
        self.state = BreakerState.CLOSED
        self._opened_at = -math.inf
        self._trial_running = False
        self._trial_successes = 0

    def record(self, failed: bool, now: float) -> bool:
        """A request the primary answered (or failed) while closed; True when this one
        trips the breaker: the error rate over the window reached the limit with at least
        `min_requests` requests in it."""
        second = int(now)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self._requests += 1
        if failed:
            bucket[2] += 1
            self._failures += 1
        oldest = second - self._settings.window_s
        while buckets and buckets[0][0] <= oldest:
            _, n, bad = buckets.popleft()
            self._requests -= n
            self._failures -= bad
        s = self._settings
        tripped = (
            failed
            and self._requests >= s.min_requests
            and self._failures >= s.error_rate * self._requests
        )
        if tripped:
            self.open(now)
        return tripped

    def open(self, now: float) -> None:
        """Open: by its own count, or because another process (or the state at start-up)
        says the model is on the fallback for this reason."""
        self.state = BreakerState.OPEN
        self._opened_at = now
        self._trial_running = False
        self._trial_successes = 0
        self._buckets.clear()
        self._requests = self._failures = 0

    def take_trial(self, now: float) -> bool:
        """Whether this request should try the primary (open, cooled down, no trial out)."""
        if self.state is BreakerState.CLOSED:
            return False
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self._settings.cooldown_s:
                return False
            self.state = BreakerState.TRIAL
        if self._trial_running:
            return False
        self._trial_running = True
        return True

    def trial_result(self, failed: bool, now: float) -> bool:
        """The outcome of a trial; True when the primary has recovered (breaker closed)."""
        self._trial_running = False
        if failed:
            self.open(now)
            return False
        self._trial_successes += 1
        if self._trial_successes >= self._settings.trial_successes:
            self.close()
            return True
        return False

    def close(self) -> None:
        self.state = BreakerState.CLOSED
        self._trial_running = False
        self._trial_successes = 0
