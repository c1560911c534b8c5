"""The mlmon Grafana dashboards, generated from code with grafana-foundation-sdk.

`python -m grafana.generate` writes grafana/dashboards/*.json (`--check` only compares;
`make dashboards` runs it with the venv's interpreter, which has grafana-foundation-sdk);
Grafana loads them through grafana/provisioning/dashboards/dashboards.yml. Panels query raw
metrics (exporter/metrics.py, stats_service/service/collector.py), never recording rules, so the
dashboards work without the Prometheus rules. Output is deterministic: sorted keys, panel
ids in layout order, fixed uids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana.generate import (
    data_quality,
    drift,
    performance,
    pipeline,
    predictions,
    releases,
    service_health,
)
from grafana.generate.board import Generated, render
from grafana.generate.kit import ELASTICSEARCH_UID, PROMETHEUS_UID

__all__ = [
    "DASHBOARDS_DIR",
    "ELASTICSEARCH_UID",
    "PROMETHEUS_UID",
    "Generated",
    "PanelQuery",
    "check",
    "dashboards",
    "panel_queries",
    "panels",
    "prometheus_panels",
    "rendered",
    "substitute",
    "write",
]

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards"
BUILDERS: tuple[Callable[[], Generated], ...] = (
    service_health.build,
    predictions.build,
    drift.build,
    data_quality.build,
    performance.build,
    pipeline.build,
    releases.build,
)
# Grafana's own variables, as a test run substitutes them (see `substitute`).
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def dashboards() -> tuple[Generated, ...]:
    return tuple(build() for build in BUILDERS)


def rendered() -> dict[str, str]:
    """File name -> the JSON text that is committed in grafana/dashboards/."""
    return {board.filename: render(board.model) for board in dashboards()}


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """What differs between the generator and the files in `directory` (empty: in sync)."""
    expected = rendered()
    problems = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the generator's output")
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path}: not generated (remove it or add it to the generator)")
    return problems


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # the dashboard's uid, e.g. "mlmon-drift"
    panel: str  # the panel's title
    expr: str  # executable PromQL: every variable substituted
    # True for panels whose series exist only once something happened (an error, a drop,
    # ground truth, a statistic that is configured): an empty result is not a failure.
    may_be_empty: bool


def substitute(
    expr: str,
    variables: Mapping[str, str],
    *,
    interval: str = "1m",
    time_range: str = "1h",
) -> str:
    """`expr` with `$name`, `${name}`, `${name:format}` and `[[name]]` replaced from
    `variables`, `$__rate_interval` / `$__interval` by `interval` and `$__range` by
    `time_range`. Raises ValueError for any other variable."""
    builtins = {"__rate_interval": interval, "__interval": interval, "__range": time_range}

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        raise ValueError(f"undefined variable ${name} in {expr!r}")

    return _VARIABLE.sub(value, expr)


def panel_queries(
    values: Mapping[str, str] | None = None,
    *,
    interval: str = "1m",
    time_range: str = "1h",
) -> list[PanelQuery]:
    """Every Prometheus query of every panel, ready to run against a live Prometheus.

    For an end-to-end test: run each `expr` with `/api/v1/query` and expect a non-empty
    result unless `may_be_empty`. Template variables (model, version, window, feature,
    method, metric) become the regex `.*` ("All"), or `values[name]` when given, e.g.
    `{"model": "demo", "window": "5m"}`; every panel uses them in `=~` matchers, so a
    value is a regex (escape special characters yourself). `$__rate_interval` and
    `$__interval` become `interval` (keep it at least 4 scrape intervals, as Grafana
    does), `$__range` becomes `time_range`. Elasticsearch targets are not included.
    Order: dashboards as generated, panels top to bottom, targets A, B, ...
    """
    chosen = dict(values or {})
    queries = []
    for board in dashboards():
        names = [variable["name"] for variable in board.model["templating"]["list"]]
        variables = {name: chosen.get(name, ".*") for name in names}
        for panel in prometheus_panels(board.model):
            for target in panel["targets"]:
                expr = substitute(
                    target["expr"], variables, interval=interval, time_range=time_range
                )
                queries.append(
                    PanelQuery(
                        board.uid, panel["title"], expr, panel["title"] in board.may_be_empty
                    )
                )
    return queries


def panels(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's panels, rows left out (panels inside collapsed rows included)."""
    found: list[dict[str, Any]] = []
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def prometheus_panels(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(model) if panel["datasource"]["uid"] == PROMETHEUS_UID]
