"""Per request, which target answers: the fallback when the model is switched to it, else
the canary for its sticky share of keys, else the primary; and what each answer tells the
circuit breaker.

The side of the canary split is a hash of a sticky key (a header's value, or the request
id), so the same client key always lands on the same side, in every worker and across
restarts.
"""

from __future__ import annotations

import hashlib
import time

from exporter.metrics import Metrics
from exporter.serving.breaker import CircuitBreaker
from exporter.serving.protocol import ProxiedRequest
from exporter.serving.routes import RouteState
from exporter.serving.targets import FALLBACK, PRIMARY, Target, Targets
from exporter.settings import Settings

_HASH_SPACE = 2**64


def canary_side(key: bytes, weight: float) -> bool:
    """Whether `key` is in the canary's share: a uniform 64-bit hash below weight * 2**64."""
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") < weight * _HASH_SPACE


class Router:
    def __init__(
        self, settings: Settings, metrics: Metrics, targets: Targets, state: RouteState
    ) -> None:
        self._targets = targets
        self._state = state
        self._metrics = metrics
        self._weight = settings.canary.weight
        self._sticky = settings.canary.sticky_header.lower().encode("latin-1")
        self._breaker_settings = settings.fallback.breaker
        self._breakers: dict[str, CircuitBreaker] = {}  # by model label: bounded
        # None: the fallback is the sidecar's own naive answer.
        self.fallback: Target | None = targets.fallback
        # Stands for the sidecar's own naive answer: no pool, `Proxy` answers itself.
        self.naive = Target(FALLBACK, settings.fallback.label, "http://127.0.0.1:0", 1.0, 1.0, 1)
        self.has_fallback = settings.fallback.configured

    @property
    def state(self) -> RouteState:
        return self._state

    def pick(self, model: str, request: ProxiedRequest, request_id: str) -> tuple[Target, bool]:
        """(the target, whether this request is a circuit-breaker trial of the primary);
        the target is `naive` when the sidecar answers itself."""
        primary = self._targets.primary
        held = self._state.on_fallback(model) if self.has_fallback else None
        if held is not None:
            breaker = self._breaker(model)
            # Firing alerts keep it on the fallback, whatever trials would say.
            if breaker is not None and held.reason == "circuit_breaker" and not held.alerts:
                now = time.monotonic()
                if breaker.state.value == "closed":  # opened by another process, or before
                    breaker.open(now)
                if breaker.take_trial(now):
                    return primary, True
            return self._fallback_target(), False
        canary = self._targets.canary
        if canary is not None:
            key = request_id.encode("latin-1", "replace")
            if self._sticky:
                for name, value in request.headers:
                    if name == self._sticky:
                        key = value
                        break
            if canary_side(key, self._weight):
                return canary, False
        return primary, False

    def outcome(self, model: str, target: Target, failed: bool, trial: bool) -> None:
        """What the primary's answer tells its breaker (a canary's or fallback's: nothing)."""
        if target.role != PRIMARY:
            return
        breaker = self._breaker(model)
        if breaker is None:
            return
        now = time.monotonic()
        if trial:
            if breaker.trial_result(failed, now):
                self._state.switch(model, PRIMARY, "circuit_recovered")
        elif breaker.state.value != "closed":  # moved back by hand while open: start afresh
            breaker.close()
        elif breaker.record(failed, now):
            self._state.switch(model, FALLBACK, "circuit_breaker")

    def _breaker(self, model: str) -> CircuitBreaker | None:
        if not self._breaker_settings.enabled:
            return None
        breaker = self._breakers.get(model)
        if breaker is None:
            breaker = self._breakers[model] = CircuitBreaker(self._breaker_settings)
        return breaker

    def _fallback_target(self) -> Target:
        return self.fallback if self.fallback is not None else self.naive
