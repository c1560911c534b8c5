"""Service health: traffic, errors, latency and payload sizes as the sidecar sees them."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.builders import timeseries as timeseries_builders

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    MODEL,
    RATE,
    RATIO_STEPS,
    STACKED,
    TABLE_FORMAT,
    VERSION,
    Steps,
    Style,
    histogram_quantile,
    max_by,
    prom,
    quantiles,
    query_variable,
    selector,
    sidecar_model_variable,
    sum_rate,
)
from grafana.generate.panels import stat_panel, table_panel, timeseries

SELECTED = f"{MODEL}, {VERSION}"
REQUESTS = selector("mlmon_requests_total", SELECTED)
ERRORS = selector("mlmon_requests_total", f'{SELECTED}, code=~"5.."')
LATENCY_STEPS = (("green", None), ("orange", 0.25), ("red", 1.0))
OVERHEAD_STEPS = (("green", None), ("orange", 0.001), ("red", 0.005))


def build() -> Generated:
    board = Board(
        "mlmon-service-health",
        "mlmon / Service health",
        "Requests through the mlmon sidecar: rate, errors, latency, overhead, sizes.",
        [
            sidecar_model_variable(),
            query_variable(
                "version",
                "Version",
                "Model versions seen for the selected models.",
                f"label_values(mlmon_requests_total{{{MODEL}}}, model_version)",
            ),
        ],
    )
    _overview_row(board)
    _traffic_row(board)
    _latency_row(board)
    _payload_row(board)
    return board.generate()


def _error_ratio(by: str) -> str:
    """5xx share; 0 (not "no data") while no 5xx series exists yet."""
    grouping = f"sum by ({by}) " if by else "sum "
    return (
        f"({grouping}(rate({ERRORS}[{RATE}])) or {grouping}(rate({REQUESTS}[{RATE}])) * 0)"
        f" / {grouping}(rate({REQUESTS}[{RATE}]))"
    )


def _p99(metric: str) -> str:
    """All selected models together, as one number for the overview."""
    return histogram_quantile(0.99, "", metric, MODEL)


def _quantiles_by_model(
    title: str, description: str, metric: str, unit: str, steps: Steps | None = None
) -> timeseries_builders.Panel:
    """p50 and p99 per model; `steps`, when given, drawn as dashed lines."""
    return timeseries(
        title,
        description,
        quantiles("model", metric, MODEL, "{{model}}"),
        Style(unit=unit, min=0, steps=steps),
        threshold_lines=steps is not None,
    )


def _versions_table() -> table.Panel:
    return table_panel(
        "Model versions seen",
        "Model versions reported in the model server's responses (or configured).",
        [
            prom(
                max_by("model, model_version", "mlmon_model_info", SELECTED),
                instant=True,
                fmt=TABLE_FORMAT,
            )
        ],
        organize={"excludeByName": {"Time": True, "Value": True}},
    )


def _overview_row(board: Board) -> None:
    board.row("Overview")
    for panel in (
        stat_panel(
            "Request rate",
            "Requests per second through the sidecar for the selected models and versions.",
            [prom(sum_rate("", "mlmon_requests_total", SELECTED))],
            Style(unit="reqps", decimals=2),
        ),
        stat_panel(
            "Error ratio (5xx)",
            "Share of responses with a 5xx status, including the sidecar's own 502/504 when "
            "the model server could not be reached or timed out.",
            [prom(_error_ratio(""))],
            Style(unit="percentunit", decimals=2, steps=RATIO_STEPS),
        ),
        stat_panel(
            "Latency p99",
            "99th percentile of end-to-end latency (sidecar plus model server), all selected "
            "models together. Thresholds: 250 ms orange, 1 s red; adjust to your model's SLO.",
            [prom(_p99("mlmon_request_duration_seconds"))],
            Style(unit="s", steps=LATENCY_STEPS),
        ),
        stat_panel(
            "Proxy overhead p99",
            "99th percentile of the time the sidecar adds (end to end minus model server). "
            "Orange above 1 ms, red above 5 ms.",
            [prom(_p99("mlmon_proxy_overhead_seconds"))],
            Style(unit="s", steps=OVERHEAD_STEPS),
        ),
    ):
        board.add(panel, 6, 4)


def _traffic_row(board: Board) -> None:
    board.row("Traffic and errors")
    board.add(
        timeseries(
            "Request rate by model and version",
            "Requests per second, by model and model version.",
            [
                prom(
                    sum_rate("model, model_version", "mlmon_requests_total", SELECTED),
                    "{{model}} {{model_version}}",
                )
            ],
            Style(unit="reqps", min=0),
        )
    )
    board.add(
        timeseries(
            "Responses by status code",
            "Responses per second by HTTP status code, stacked. 502/504 come from the "
            "sidecar when the model server failed (see upstream errors).",
            [prom(sum_rate("code", "mlmon_requests_total", SELECTED), "{{code}}")],
            Style(unit="reqps", min=0),
            stack=STACKED,
        )
    )
    board.add(
        timeseries(
            "Error ratio (5xx) by model",
            "Share of responses with a 5xx status. Dashed lines: 1% and 5%.",
            [prom(_error_ratio("model"), "{{model}}")],
            Style(unit="percentunit", min=0, steps=RATIO_STEPS),
            threshold_lines=True,
        )
    )
    board.add(
        timeseries(
            "Upstream errors by reason",
            "Requests the model server did not answer, per second, by reason (connect "
            "failure, timeout, ...). All models behind the sidecar.",
            [prom(sum_rate("reason", "mlmon_upstream_errors_total"), "{{reason}}")],
            Style(unit="reqps", min=0, no_value="0"),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "In-flight requests",
            "Requests being proxied right now, per sidecar instance (all models).",
            [prom("sum by (instance) (mlmon_in_flight_requests)", "{{instance}}")],
            COUNT,
        )
    )
    board.add(_versions_table())


def _latency_row(board: Board) -> None:
    board.row("Latency")
    for panel in (
        _quantiles_by_model(
            "Latency p50 / p99 (end to end)",
            "Time from the request read to the response sent, by model. Dashed lines: "
            "250 ms and 1 s.",
            "mlmon_request_duration_seconds",
            "s",
            LATENCY_STEPS,
        ),
        _quantiles_by_model(
            "Model server latency p50 / p99",
            "Time from forwarding the request to the last byte of the model server's "
            "response, by model.",
            "mlmon_upstream_duration_seconds",
            "s",
        ),
        _quantiles_by_model(
            "Proxy overhead p50 / p99",
            "Time the sidecar adds on top of the model server, by model. Dashed lines: 1 ms "
            "and 5 ms.",
            "mlmon_proxy_overhead_seconds",
            "s",
            OVERHEAD_STEPS,
        ),
    ):
        board.add(panel, 8)


def _payload_row(board: Board) -> None:
    board.row("Payload sizes")
    board.add(
        _quantiles_by_model(
            "Request size p50 / p99",
            "Request body size, by model.",
            "mlmon_request_size_bytes",
            "bytes",
        )
    )
    board.add(
        _quantiles_by_model(
            "Response size p50 / p99",
            "Response body size, by model.",
            "mlmon_response_size_bytes",
            "bytes",
        )
    )
