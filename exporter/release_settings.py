"""Settings of the release routes: shadow candidates, a canary, a fallback, the admin listener.

shadow:                          # --shadow URL (repeatable), or --shadow NAME=URL
  - {name: m2, url: http://127.0.0.1:9001, sample: 0.5, timeout_s: 2, max_in_flight: 32}
canary: {url: http://127.0.0.1:9002, weight: 0.1, sticky_header: x-user-id}
fallback: {url: http://127.0.0.1:9003, on_alerts: [MlmonHighErrorRate]}
admin: {port: 8001, token_file: /run/secrets/mlmon_admin_token}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exporter.config import non_negative, port_number, positive, setting
from exporter.errors import SettingsError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")
URL_EXPECTED = "an http:// URL such as http://127.0.0.1:8080"
# The alerts of the shipped rules that mean the primary serves wrong or failing answers.
DEFAULT_FALLBACK_ALERTS = ("MlmonHighErrorRate", "MlmonPredictionDrift", "MlmonDatasetDrift")


def http_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname:
        return f"{URL_EXPECTED} (TLS to the upstream: not supported)"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "an http:// URL with a valid port"
    return None


def _optional_url(value: Any) -> str | None:
    return None if value == "" else http_url(value)


def _fraction(value: Any) -> str | None:
    return None if 0.0 <= value <= 1.0 else "a number between 0 and 1"


def _route_name(value: Any) -> str | None:
    if value == "" or _NAME.fullmatch(value):
        return None
    return "a name of letters, digits and _.:- (at most 63 characters)"


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "an integer >= 1"


def default_name(url: str) -> str:
    """A route's name when none is given: its host and port, a bounded label value."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"


def _named_url(text: str) -> dict[str, str]:
    """NAME=URL or URL: the short form of a flag or variable."""
    name, sep, url = text.partition("=")
    if not sep or "://" in name:
        return {"url": text}
    return {"name": name, "url": url}


@dataclass(frozen=True)
class ShadowSettings:
    """A candidate that gets a copy of sampled requests; the client never waits for it."""

    url: str = setting("", check=http_url)
    name: str = setting("", check=_route_name, help="label value; default host:port")
    sample: float = setting(1.0, check=_fraction, help="share of requests copied")
    timeout_s: float = setting(5.0, check=positive, help="per copy, connect and read")
    max_in_flight: int = setting(64, check=_at_least_one, help="copies beyond are dropped")

    @classmethod
    def from_text(cls, text: str) -> dict[str, str]:
        return _named_url(text)

    @property
    def label(self) -> str:
        return self.name or default_name(self.url)


@dataclass(frozen=True)
class CanarySettings:
    """A candidate answering a sticky share of requests for real (`--canary URL@FRACTION`)."""

    url: str = setting("", check=_optional_url)
    name: str = setting("", check=_route_name, help="label value; default host:port")
    weight: float = setting(0.0, check=_fraction, help="share of sticky keys sent to it")
    sticky_header: str = setting(
        "", help="request header whose value decides the side; default the request id"
    )

    @property
    def label(self) -> str:
        return self.name or default_name(self.url)


@dataclass(frozen=True)
class BreakerSettings:
    """The circuit breaker on the primary: open (traffic to the fallback) past an error rate."""

    enabled: bool = setting(False, help="needs a fallback")
    error_rate: float = setting(0.5, check=_fraction, help="errors + timeouts per request")
    window_s: float = setting(10.0, check=positive, help="sliding window of outcomes")
    min_requests: int = setting(20, check=_at_least_one, help="in the window, before judging")
    cooldown_s: float = setting(30.0, check=positive, help="open, before a trial request")
    trial_successes: int = setting(3, check=_at_least_one, help="trials that close it")


@dataclass(frozen=True)
class FallbackSettings:
    """A safe model to move traffic to: a URL, or a naive answer built from a baseline."""

    url: str = setting("", check=_optional_url)
    name: str = setting("", check=_route_name, help="label value; default host:port or naive")
    baseline: str = setting(
        "", help="baseline JSON whose prediction summary gives the naive answer (no url)"
    )
    on_alerts: tuple[str, ...] = setting(
        DEFAULT_FALLBACK_ALERTS, help="Alertmanager alerts (by alertname) that switch a model"
    )
    switch_back_on_resolved: bool = setting(True, help="a resolved alert moves traffic back")
    breaker: BreakerSettings = BreakerSettings()

    @property
    def configured(self) -> bool:
        return bool(self.url or self.baseline)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return default_name(self.url) if self.url else "naive"


@dataclass(frozen=True)
class AdminSettings:
    """The authenticated admin listener; without a token file there is none."""

    host: str = setting("127.0.0.1")
    port: int = setting(8001, check=port_number)
    token_file: str = setting("", help="file holding the bearer token")
    max_body_bytes: int = setting(1024 * 1024, check=non_negative)


def read_token(settings: AdminSettings) -> str | None:
    """The admin bearer token; None without a token file (then there is no admin listener)."""
    path = settings.token_file
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(
            f"settings: key 'admin.token_file': expected a readable file, got {path!r} "
            f"({exc.strerror})"
        ) from None
    if not token:
        raise SettingsError(f"settings: key 'admin.token_file': expected a token in {path!r}")
    return token
