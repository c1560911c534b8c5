"""Panel factories in the house style (legend, tooltip, units, threshold lines).

Query refIds are A, B, C... in the order of the panel's targets.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

from grafana.generate.kit import (
    DEFAULT_STYLE,
    PROMETHEUS,
    Query,
    Style,
    prom,
    sum_rate,
    thresholds,
)


class _Panel(Protocol):
    """What every panel builder of the SDK offers; lets one helper style them all."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dashboard_models.DataSourceRef) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def min(self, min_val: float) -> Self: ...
    def max(self, max_val: float) -> Self: ...
    def decimals(self, decimals: float) -> Self: ...
    def no_value(self, no_value: str) -> Self: ...
    def thresholds(
        self, thresholds: cogbuilder.Builder[dashboard_models.ThresholdsConfig]
    ) -> Self: ...
    def mappings(self, mappings: list[dashboard_models.ValueMapping]) -> Self: ...


P = TypeVar("P", bound=_Panel)
AnyPanel = (
    timeseries_builders.Panel
    | stat.Panel
    | bargauge.Panel
    | statetimeline.Panel
    | heatmap.Panel
    | table.Panel
)


def _styled(
    panel: P,
    title: str,
    description: str,
    targets: Sequence[Query],
    style: Style,
    datasource: dashboard_models.DataSourceRef = PROMETHEUS,
) -> P:
    panel = panel.title(title).description(description).datasource(datasource).unit(style.unit)
    for ref_id, target in zip(string.ascii_uppercase, targets, strict=False):
        panel = panel.with_target(target.ref_id(ref_id))
    if style.min is not None:
        panel = panel.min(style.min)
    if style.max is not None:
        panel = panel.max(style.max)
    if style.decimals is not None:
        panel = panel.decimals(style.decimals)
    if style.no_value is not None:
        panel = panel.no_value(style.no_value)
    if style.mappings:
        panel = panel.mappings(list(style.mappings))
    return panel.thresholds(thresholds(style.steps or (("green", None),)))


def _bottom_legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _dashed(panel: timeseries_builders.Panel, regex: str) -> timeseries_builders.Panel:
    """The series whose names match `regex` drawn dashed and unfilled."""
    return panel.override_by_regexp(
        regex,
        [
            dashboard_models.DynamicConfigValue(
                id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
            ),
            dashboard_models.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


def timeseries(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    style: Style = DEFAULT_STYLE,
    *,
    stack: common.StackingMode | None = None,
    threshold_lines: bool = False,
    log_scale: bool = False,
    dashed: str | None = None,
) -> timeseries_builders.Panel:
    """A time series. `threshold_lines` draws the style's steps as dashed lines; `dashed`
    is a regex of series names (legends) drawn dashed, e.g. thresholds exported as series."""
    panel = (
        _styled(timeseries_builders.Panel(), title, description, targets, style)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(_bottom_legend())
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stack is not None:
        # Opaque enough that the stacked bands read as parts of a whole.
        panel = panel.stacking(common_builders.StackingConfig().mode(stack).group("A"))
        panel = panel.fill_opacity(60)
    if threshold_lines:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    if log_scale:
        panel = panel.scale_distribution(
            common_builders.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
        )
    return panel if dashed is None else _dashed(panel, dashed)


def versus(
    title: str,
    description: str,
    measured: prometheus.Dataquery,
    reference: tuple[str, str],
    style: Style,
    *,
    kind: str = "threshold",
) -> timeseries_builders.Panel:
    """`measured` solid against a `reference` (expr, legend) drawn dashed: a threshold, a
    baseline. The reference's legend gets `kind` in front, which is what the dashing matches."""
    expr, legend = reference
    return timeseries(
        title,
        description,
        [measured, prom(expr, f"{kind} {legend}")],
        style,
        dashed=f"^{kind} .*",
    )


def _properties(**properties: object) -> list[dashboard_models.DynamicConfigValue]:
    """Field settings of an override; `custom__fillOpacity` is Grafana's custom.fillOpacity."""
    return [
        dashboard_models.DynamicConfigValue(id_val=key.replace("__", "."), value=value)
        for key, value in properties.items()
    ]


# The series of `band`: fixed names, which is what Grafana's fill-between pairs.
ESTIMATED, LOWER, UPPER, REALISED = "estimated", "band lower", "band upper", "realised"


def band(
    title: str,
    description: str,
    estimate: str,
    bounds: tuple[str, str],
    realised: str,
    style: Style,
) -> timeseries_builders.Panel:
    """An `estimate` (dashed) filled between its (lower, upper) `bounds` exprs, and the
    `realised` value (solid) on the same time axis. Grafana fills between two series named
    exactly, so each panel must show one series of each: repeat it per label value."""
    lower, upper = bounds
    estimate_color = {"mode": "fixed", "fixedColor": "blue"}
    panel = timeseries(
        title,
        description,
        [
            prom(estimate, ESTIMATED),
            prom(lower, LOWER),
            prom(upper, UPPER),
            prom(realised, REALISED),
        ],
        style,
        dashed=f"^{ESTIMATED}$",
    )
    return (
        panel.override_by_name(
            UPPER,
            _properties(
                custom__fillBelowTo=LOWER,
                custom__fillOpacity=20,
                custom__lineWidth=0,
                color=estimate_color,
            ),
        )
        .override_by_name(
            LOWER, _properties(custom__fillOpacity=0, custom__lineWidth=0, color=estimate_color)
        )
        .override_by_name(ESTIMATED, _properties(color=estimate_color))
        .override_by_name(
            REALISED,
            _properties(custom__lineWidth=2, color={"mode": "fixed", "fixedColor": "orange"}),
        )
    )


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    style: Style = DEFAULT_STYLE,
) -> stat.Panel:
    """The latest value, coloured by the style's steps, with a sparkline."""
    return (
        _styled(stat.Panel(), title, description, targets, style)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(_last_value())
    )


def bars(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    style: Style = DEFAULT_STYLE,
) -> bargauge.Panel:
    """One horizontal bar per series (instant queries), coloured by the style's steps."""
    return (
        _styled(bargauge.Panel(), title, description, targets, style)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_last_value())
    )


def states(
    title: str, description: str, targets: Sequence[prometheus.Dataquery], style: Style
) -> statetimeline.Panel:
    """A state timeline: one band per series, its value mapped to a word and a colour."""
    return (
        _styled(statetimeline.Panel(), title, description, targets, style)
        .show_value(common.VisibilityMode.AUTO)
        .merge_values(True)
        .fill_opacity(80)
        .legend(_bottom_legend())
    )


def heatmap_panel(
    title: str, description: str, metric: str, matchers: str, unit: str
) -> heatmap.Panel:
    """A heatmap of a Prometheus histogram: one row per bucket (`le`), colour = count."""
    target = prom(
        sum_rate("le", f"{metric}_bucket", matchers, func="increase"),
        "{{le}}",
        fmt=prometheus_models.PromQueryFormat.HEATMAP,
    )
    return (
        _styled(heatmap.Panel(), title, description, [target], Style(unit="short"))
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_models.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_models.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .show_value(common.VisibilityMode.NEVER)
        .cell_gap(1)
    )


def table_panel(
    title: str,
    description: str,
    targets: Sequence[Query],
    style: Style = DEFAULT_STYLE,
    *,
    datasource: dashboard_models.DataSourceRef = PROMETHEUS,
    organize: dict[str, object] | None = None,
    merge: bool = False,
) -> table.Panel:
    """A table; `organize` is the options of Grafana's "organize fields" transformation;
    `merge` joins the targets' rows on their labels first (one column per target)."""
    panel = _styled(table.Panel(), title, description, targets, style, datasource)
    panel = panel.filterable(True).cell_height(common.TableCellHeight.SM)
    if merge:
        panel = panel.with_transformation(
            dashboard_models.DataTransformerConfig(id_val="merge", options={})
        )
    if organize is not None:
        panel = panel.with_transformation(
            dashboard_models.DataTransformerConfig(id_val="organize", options=organize)
        )
    return panel
