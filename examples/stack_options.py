"""What a caller chooses about the local stack (`examples.stack`), and the URLs it gets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from examples.stack_webhook import Notification


@dataclass(frozen=True)
class PrometheusOptions:
    scrape_interval_s: float = 15.0
    evaluation_interval_s: float = 15.0
    # Every rule's `for:` becomes this many seconds in the work directory's copy of the
    # rules (theirs, 2 minutes to 1 hour, cannot be waited on in a test); None: as written.
    for_override_s: float | None = None
    binary: str = "prometheus"
    required: bool = True  # False: start without Prometheus when the binary is missing


@dataclass(frozen=True)
class AlertmanagerOptions:
    # Set on the root route and on every route that sets its own; None: as configured.
    group_wait_s: float | None = None
    group_interval_s: float | None = None
    repeat_interval_s: float | None = None
    binary: str = "prometheus-alertmanager"
    envsubst: str = "envsubst"
    required: bool = True  # False: start without Alertmanager when a binary is missing


@dataclass(frozen=True)
class StackOptions:
    # The stats service's settings (stats_service/settings.py): `drift` is its section.
    windows: tuple[str, ...] = ("5m", "1h")
    stats_interval_s: float = 30.0
    min_samples: int = 100
    drift: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # A second model server with a different model (`model_server --candidate`), sent a
    # copy of every request by the sidecar as shadow CANDIDATE_NAME; and the sidecar's
    # naive fallback built from the baseline, switched on its admin listener.
    candidate: bool = False
    prometheus: PrometheusOptions | None = None  # None: no Prometheus
    alertmanager: AlertmanagerOptions | None = None  # None: no Alertmanager, no receiver
    startup_timeout_s: float = 120.0  # per component
    stop_grace_s: float = 10.0  # per component, between SIGTERM and SIGKILL
    log: Callable[[str], None] | None = None  # progress lines; None: quiet
    on_notification: Callable[[Notification], None] | None = None  # per webhook POST


@dataclass(frozen=True)
class StackUrls:
    model_server: str
    sidecar: str  # what clients call instead of the model server
    stats: str
    prometheus: str | None
    alertmanager: str | None
    webhook: str | None  # where Alertmanager posts its notifications
    candidate: str | None = None  # the shadow's model server
    admin: str | None = None  # the sidecar's admin listener (bearer token: admin_token_file)
    admin_token_file: str | None = None
