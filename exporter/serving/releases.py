"""The release routes put together from the settings: targets, route state, router, naive
fallback, admin listener; and their life on the serving loop (the admin listener, the
polls of the route state that other processes may change)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from exporter.metrics import Metrics
from exporter.release_settings import read_token
from exporter.serving.admin import Admin
from exporter.serving.admin_server import AdminServer
from exporter.serving.naive import NaiveAnswer
from exporter.serving.router import Router
from exporter.serving.routes import POLL_INTERVAL_S, RouteState
from exporter.serving.targets import Targets
from exporter.settings import Settings
from exporter.tally import LabelCap


@dataclass
class Releases:
    targets: Targets
    router: Router | None = None
    naive: NaiveAnswer | None = None
    admin: AdminServer | None = None
    _poll: asyncio.TimerHandle | None = field(default=None, init=False)

    async def start(self) -> None:
        if self.admin is not None:
            await self.admin.start()
        if self.router is not None:
            self._schedule_poll()

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        if self.admin is not None:
            await self.admin.stop()

    def _schedule_poll(self) -> None:
        self._poll = asyncio.get_running_loop().call_later(POLL_INTERVAL_S, self._refresh)

    def _refresh(self) -> None:
        assert self.router is not None
        self.router.state.refresh()
        self._schedule_poll()


def build_releases(settings: Settings, metrics: Metrics, model_label: LabelCap) -> Releases:
    targets = Targets.from_settings(settings)
    fallback = settings.fallback
    releases = Releases(targets)
    if fallback.baseline:
        releases.naive = NaiveAnswer.from_baseline(fallback.baseline)
    state = RouteState(settings.spool_dir, metrics, model_label)
    if targets.canary is not None or fallback.configured:
        releases.router = Router(settings, metrics, targets, state)
    token = read_token(settings.admin)
    if token is not None:
        configured: dict[str, Any] = {
            "primary": settings.upstream,
            "canary": None
            if targets.canary is None
            else {"name": targets.canary.name, "url": targets.canary.url,
                  "weight": settings.canary.weight},
            "fallback": None
            if not fallback.configured
            else {"name": fallback.label, "url": fallback.url or None,
                  "naive": bool(fallback.baseline)},
            "shadows": [{"name": t.name, "url": t.url} for t in targets.shadows],
        }  # fmt: skip
        admin = Admin(token, state, fallback, metrics, model_label, configured)
        releases.admin = AdminServer(settings.admin, admin)
    return releases
