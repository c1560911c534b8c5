"""The model servers a request can go to: the primary, a canary, a fallback, shadows.

Each is a `Target`: its own connection pool, path prefix and Host header, so that a
request is forwarded to any of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from exporter.records import CANARY, FALLBACK, PRIMARY, SHADOW
from exporter.serving.upstream import UpstreamPool
from exporter.settings import Settings

__all__ = ["CANARY", "FALLBACK", "PRIMARY", "SHADOW", "Target", "Targets"]


@dataclass
class Target:
    role: str  # PRIMARY, SHADOW, CANARY or FALLBACK
    name: str  # the configured route name: a label value; "" for the primary
    url: str
    connect_timeout_s: float
    read_timeout_s: float
    max_idle: int
    # Read on every request: worked out once.
    host: str = field(init=False)
    port: int = field(init=False)
    prefix: str = field(init=False)
    host_header: bytes = field(init=False)
    pool: UpstreamPool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        authority = self.host if self.port == 80 else f"{self.host}:{self.port}"
        self.host_header = authority.encode("latin-1")

    def start(self) -> None:
        """Open the pool; on the serving loop."""
        self.pool = UpstreamPool(
            self.host,
            self.port,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            max_idle=self.max_idle,
        )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@dataclass(frozen=True)
class Targets:
    primary: Target
    canary: Target | None
    fallback: Target | None  # None also when the fallback is the sidecar's naive answer
    shadows: tuple[Target, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        s = settings

        def target(role: str, name: str, url: str, read_timeout: float | None = None) -> Target:
            read = s.read_timeout_s if read_timeout is None else read_timeout
            connect = min(s.connect_timeout_s, read)
            return Target(role, name, url, connect, read, s.pool_max_idle)

        canary = s.canary
        fallback = s.fallback
        return cls(
            primary=target(PRIMARY, "", s.upstream),
            canary=target(CANARY, canary.label, canary.url) if canary.weight > 0 else None,
            fallback=target(FALLBACK, fallback.label, fallback.url) if fallback.url else None,
            shadows=tuple(
                target(SHADOW, shadow.label, shadow.url, shadow.timeout_s) for shadow in s.shadow
            ),
        )

    def all(self) -> list[Target]:
        found = [self.primary, self.canary, self.fallback, *self.shadows]
        return [t for t in found if t is not None]
