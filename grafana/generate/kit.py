"""Constants and queries shared by the dashboards: datasources, variables, matchers.

Everything goes through grafana-foundation-sdk's typed builders. Nothing here reads the
clock or the network. The PromQL helpers take their arguments in the order PromQL reads:
grouping labels, then metric, then matchers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import elasticsearch, prometheus
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

# Must match grafana/provisioning/datasources/datasources.yml (a test checks it).
PROMETHEUS_UID = "mlmon-prometheus"
ELASTICSEARCH_UID = "mlmon-elasticsearch"
PROMETHEUS = dashboard_models.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
ELASTICSEARCH = dashboard_models.DataSourceRef(type_val="elasticsearch", uid=ELASTICSEARCH_UID)

TAG = "mlmon"
RATE = "$__rate_interval"
# Label matchers of the template variables, always regex matchers: "All" is `.*`.
MODEL = 'model=~"$model"'
VERSION = 'model_version=~"$version"'
WINDOW = 'window=~"$window"'
FEATURE = 'feature=~"$feature"'
IN_WINDOW = f"{MODEL}, {WINDOW}"  # the stats service's series of the chosen model and window
METHOD = 'method=~"$method"'
METRIC = 'metric=~"$metric"'
WINDOW_LEGEND = "{{model}} ({{window}})"

ROWS_PER_SECOND = "suffix: rows/s"
TABLE_FORMAT = prometheus_models.PromQueryFormat.TABLE
STACKED = common.StackingMode.NORMAL

Query = prometheus.Dataquery | elasticsearch.Dataquery
Steps = Sequence[tuple[str, float | None]]
# Traffic-light steps for ratios where 0 is good.
RATIO_STEPS: Steps = (("green", None), ("orange", 0.01), ("red", 0.05))
# For rates of events that should never happen: one event in a rate window is a small
# fraction per second, so the red step must sit just above 0, not at 1.
ANY_RATE_IS_RED: Steps = (("green", None), ("red", 1e-9))


@dataclass(frozen=True)
class Style:
    """Field settings common to every kind of panel."""

    unit: str = "short"
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    steps: Steps | None = None
    no_value: str | None = None
    mappings: tuple[dashboard_models.ValueMapping, ...] = ()


DEFAULT_STYLE = Style()
COUNT = Style(unit="short", min=0, decimals=0)  # rows, requests: whole numbers
SHARE = Style(unit="percentunit", min=0, max=1)


def rare_failures(unit: str) -> Style:
    """A rate of failures: "0" rather than "No data" while none happened yet, red above 0."""
    return Style(unit=unit, min=0, no_value="0", steps=ANY_RATE_IS_RED)


def prom(
    expr: str,
    legend: str = "",
    *,
    instant: bool = False,
    fmt: prometheus_models.PromQueryFormat | None = None,
) -> prometheus.Dataquery:
    """A Prometheus query: a range query unless `instant` (tables, bar gauges, stats)."""
    query = (
        prometheus.Dataquery()
        .expr(expr)
        .datasource(PROMETHEUS)
        .editor_mode(prometheus_models.QueryEditorMode.CODE)
    )
    if legend:
        query = query.legend_format(legend)
    query = query.instant() if instant else query.range()
    if fmt is not None:
        query = query.format(fmt)
    return query


def selector(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{matchers}}}" if matchers else metric


def max_by(by: str, metric: str, matchers: str = "") -> str:
    return f"max by ({by}) ({selector(metric, matchers)})"


def sum_rate(by: str, metric: str, matchers: str = "", *, func: str = "rate") -> str:
    """`sum by (by) (rate(metric{matchers}[$__rate_interval]))`; a plain `sum` without `by`.
    `func` is the range function (`increase` for counts per interval)."""
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}({func}({selector(metric, matchers)}[{RATE}]))"


def histogram_quantile(q: float, by: str, metric: str, matchers: str) -> str:
    """The `q` quantile of a Prometheus histogram, aggregated `by` (plus `le`)."""
    # Without matchers the empty `{}` (valid PromQL) stays, so the committed JSON is unchanged.
    return (
        f"histogram_quantile({q}, sum by ({by}{', ' if by else ''}le) "
        f"(rate({metric}_bucket{{{matchers}}}[{RATE}])))"
    )


def quantiles(
    by: str, metric: str, matchers: str, legend: str, qs: Sequence[float] = (0.5, 0.99)
) -> list[prometheus.Dataquery]:
    """Quantiles of a Prometheus histogram, p50 and p99 unless `qs`, named "p50 <legend>"."""
    return [
        prom(histogram_quantile(q, by, metric, matchers), f"p{round(q * 100)} {legend}".strip())
        for q in qs
    ]


@dataclass(frozen=True)
class Grouping:
    """One shape of the stats service's gauges: a series per combination of `by`, filtered by
    `matchers` and named by `legend`. A dashboard reads many metrics in the same shape."""

    by: str
    matchers: str
    legend: str

    def expr(self, metric: str, extra: str = "") -> str:
        """`max by` the grouping; `extra` is one more matcher, e.g. 'status="error"'."""
        return max_by(self.by, metric, f"{self.matchers}, {extra}" if extra else self.matchers)

    def query(self, metric: str, extra: str = "", *, instant: bool = False) -> prometheus.Dataquery:
        return prom(self.expr(metric, extra), self.legend, instant=instant)


# Input rows per second by model: requests times their batch size.
ROWS_BY_MODEL = sum_rate("model", "mlmon_batch_size_sum", MODEL)
PER_WINDOW = Grouping("model, window", IN_WINDOW, WINDOW_LEGEND)
PER_FEATURE = Grouping(
    "model, window, feature", f"{IN_WINDOW}, {FEATURE}", "{{model}}/{{feature}} ({{window}})"
)


def thresholds(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=value, color=color) for color, value in steps])
    )


def value_mapping(texts: dict[int, tuple[str, str]]) -> dashboard_models.ValueMap:
    """Numbers shown as words: {0: ("ok", "green"), 1: ("drift", "red")}."""
    return dashboard_models.ValueMap(
        options={
            str(value): dashboard_models.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(sorted(texts.items()))
        }
    )


def query_variable(
    name: str, label: str, description: str, query: str, *, all_value: str | None = ".*"
) -> dashboard_builders.QueryVariable:
    """A multi-value Prometheus `label_values(...)` variable, "All" selected at first.

    `all_value` ".*" makes "All" match every value, also ones that appear after the
    dashboard loaded; None makes Grafana expand "All" to the listed values (needed where
    the variable also filters a Lucene query, which has no `.*`)."""
    variable = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dashboard_models.VariableOption(selected=True, text="All", value="$__all"))
    )
    if all_value is not None:
        variable = variable.all_value(all_value)
    return variable


def stats_window_variables(metric: str) -> list[dashboard_builders.QueryVariable]:
    """The model and window variables of the stats service's dashboards, from `metric`."""
    return [
        query_variable(
            "model",
            "Model",
            "Models the stats service evaluates.",
            f"label_values({metric}, model)",
        ),
        query_variable(
            "window",
            "Window",
            "Evaluation windows (by time, e.g. 1h, or by row count).",
            f"label_values({metric}{{{MODEL}}}, window)",
        ),
    ]


def sidecar_model_variable() -> dashboard_builders.QueryVariable:
    """The model variable of the dashboards of what the sidecar proxied."""
    return query_variable(
        "model",
        "Model",
        "Models the sidecar has proxied requests for.",
        "label_values(mlmon_requests_total, model)",
    )
