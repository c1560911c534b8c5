"""A dashboard under construction, and its generated JSON.

Panel ids count up from 1 in the order rows and panels are added, so they are stable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_models

from grafana.generate.kit import TAG
from grafana.generate.panels import AnyPanel


@dataclass(frozen=True)
class Generated:
    """One dashboard as Grafana reads it, plus what tests need to know about it."""

    uid: str
    title: str
    model: dict[str, Any]  # the dashboard JSON, as plain data
    # Titles of panels whose series only exist once something happened (an error, a
    # drop, ground truth arriving, an optional statistic configured): empty is not broken.
    may_be_empty: frozenset[str]

    @property
    def filename(self) -> str:
        return f"{self.uid.removeprefix(TAG + '-')}.json"


class Board:
    """A dashboard under construction: rows of panels laid out left to right."""

    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        variables: Sequence[dashboard_builders.QueryVariable],
    ) -> None:
        self.uid = uid
        self._next_id = 1
        self._may_be_empty: set[str] = set()
        self._builder = (
            dashboard_builders.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags([TAG])
            .editable()
            .timezone("browser")
            .time("now-3h", "now")
            .refresh("30s")
            .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
            .link(
                dashboard_builders.DashboardLink("mlmon dashboards")
                .type(dashboard_models.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
            .variables(list(variables))
        )

    def row(self, title: str, *, repeat: str | None = None) -> None:
        """A row of the panels added next; `repeat` names a variable to repeat it for."""
        row = dashboard_builders.Row(title).id(self._take_id()).collapsed(False)
        self._builder = self._builder.with_row(row if repeat is None else row.repeat(repeat))

    def add(
        self, panel: AnyPanel, width: int = 12, height: int = 8, *, may_be_empty: bool = False
    ) -> None:
        built = panel.id(self._take_id()).span(width).height(height)
        if may_be_empty:
            self._may_be_empty.add(built.build().title or "")
        self._builder = self._builder.with_panel(built)

    def _take_id(self) -> int:
        taken, self._next_id = self._next_id, self._next_id + 1
        return taken

    def generate(self) -> Generated:
        built = self._builder.build()
        model = json.loads(json.dumps(built, cls=JSONEncoder))
        return Generated(self.uid, built.title or "", model, frozenset(self._may_be_empty))


def render(model: dict[str, Any]) -> str:
    """The committed file's text: sorted keys, two-space indent, final newline."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
