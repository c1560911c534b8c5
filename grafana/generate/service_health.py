"""Service health: traffic, errors, latency and payload sizes as the sidecar sees them."""

from __future__ import annotations

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    MODEL,
    RATE,
    RATIO_STEPS,
    STACKED,
    TABLE_FORMAT,
    VERSION,
    Style,
    prom,
    quantiles,
    query_variable,
)
from grafana.generate.panels import stat_panel, table_panel, timeseries

REQUESTS = f"mlmon_requests_total{{{MODEL}, {VERSION}}}"
ERRORS = f'mlmon_requests_total{{{MODEL}, {VERSION}, code=~"5.."}}'
LATENCY_STEPS = (("green", None), ("orange", 0.25), ("red", 1.0))
OVERHEAD_STEPS = (("green", None), ("orange", 0.001), ("red", 0.005))


def _error_ratio(by: str) -> str:
    """5xx share; 0 (not "no data") while no 5xx series exists yet."""
    grouping = f"sum by ({by}) " if by else "sum "
    return (
        f"({grouping}(rate({ERRORS}[{RATE}])) or {grouping}(rate({REQUESTS}[{RATE}])) * 0)"
        f" / {grouping}(rate({REQUESTS}[{RATE}]))"
    )


def build() -> Generated:
    board = Board(
        "mlmon-service-health",
        "mlmon / Service health",
        "Requests through the mlmon sidecar: rate, errors, latency, overhead, sizes.",
        [
            query_variable(
                "model",
                "Model",
                "Models the sidecar has proxied requests for.",
                "label_values(mlmon_requests_total, model)",
            ),
            query_variable(
                "version",
                "Version",
                "Model versions seen for the selected models.",
                f"label_values(mlmon_requests_total{{{MODEL}}}, model_version)",
            ),
        ],
    )
    board.row("Overview")
    board.add(
        stat_panel(
            "Request rate",
            "Requests per second through the sidecar for the selected models and versions.",
            [prom(f"sum(rate({REQUESTS}[{RATE}]))")],
            Style(unit="reqps", decimals=2),
        ),
        6,
        4,
    )
    board.add(
        stat_panel(
            "Error ratio (5xx)",
            "Share of responses with a 5xx status, including the sidecar's own 502/504 when "
            "the model server could not be reached or timed out.",
            [prom(_error_ratio(""))],
            Style(unit="percentunit", decimals=2, steps=RATIO_STEPS),
        ),
        6,
        4,
    )
    board.add(
        stat_panel(
            "Latency p99",
            "99th percentile of end-to-end latency (sidecar plus model server), all selected "
            "models together. Thresholds: 250 ms orange, 1 s red; adjust to your model's SLO.",
            [
                prom(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(mlmon_request_duration_seconds_bucket{{{MODEL}}}[{RATE}])))"
                )
            ],
            Style(unit="s", steps=LATENCY_STEPS),
        ),
        6,
        4,
    )
    board.add(
        stat_panel(
            "Proxy overhead p99",
            "99th percentile of the time the sidecar adds (end to end minus model server). "
            "Orange above 1 ms, red above 5 ms.",
            [
                prom(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(mlmon_proxy_overhead_seconds_bucket{{{MODEL}}}[{RATE}])))"
                )
            ],
            Style(unit="s", steps=OVERHEAD_STEPS),
        ),
        6,
        4,
    )

    board.row("Traffic and errors")
    board.add(
        timeseries(
            "Request rate by model and version",
            "Requests per second, by model and model version.",
            [
                prom(
                    f"sum by (model, model_version) (rate({REQUESTS}[{RATE}]))",
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
            [prom(f"sum by (code) (rate({REQUESTS}[{RATE}]))", "{{code}}")],
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
            [prom(f"sum by (reason) (rate(mlmon_upstream_errors_total[{RATE}]))", "{{reason}}")],
            Style(unit="reqps", min=0, no_value="0"),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "In-flight requests",
            "Requests being proxied right now, per sidecar instance (all models).",
            [prom("sum by (instance) (mlmon_in_flight_requests)", "{{instance}}")],
            Style(unit="short", min=0, decimals=0),
        )
    )
    board.add(
        table_panel(
            "Model versions seen",
            "Model versions reported in the model server's responses (or configured).",
            [
                prom(
                    f"max by (model, model_version) (mlmon_model_info{{{MODEL}, {VERSION}}})",
                    instant=True,
                    fmt=TABLE_FORMAT,
                )
            ],
            organize={"excludeByName": {"Time": True, "Value": True}},
        )
    )

    board.row("Latency")
    board.add(
        timeseries(
            "Latency p50 / p99 (end to end)",
            "Time from the request read to the response sent, by model. Dashed lines: "
            "250 ms and 1 s.",
            quantiles("mlmon_request_duration_seconds", MODEL, "model", "{{model}}"),
            Style(unit="s", min=0, steps=LATENCY_STEPS),
            threshold_lines=True,
        ),
        8,
    )
    board.add(
        timeseries(
            "Model server latency p50 / p99",
            "Time from forwarding the request to the last byte of the model server's "
            "response, by model.",
            quantiles("mlmon_upstream_duration_seconds", MODEL, "model", "{{model}}"),
            Style(unit="s", min=0),
        ),
        8,
    )
    board.add(
        timeseries(
            "Proxy overhead p50 / p99",
            "Time the sidecar adds on top of the model server, by model. Dashed lines: 1 ms "
            "and 5 ms.",
            quantiles("mlmon_proxy_overhead_seconds", MODEL, "model", "{{model}}"),
            Style(unit="s", min=0, steps=OVERHEAD_STEPS),
            threshold_lines=True,
        ),
        8,
    )

    board.row("Payload sizes")
    board.add(
        timeseries(
            "Request size p50 / p99",
            "Request body size, by model.",
            quantiles("mlmon_request_size_bytes", MODEL, "model", "{{model}}"),
            Style(unit="bytes", min=0),
        )
    )
    board.add(
        timeseries(
            "Response size p50 / p99",
            "Response body size, by model.",
            quantiles("mlmon_response_size_bytes", MODEL, "model", "{{model}}"),
            Style(unit="bytes", min=0),
        )
    )
    return board.generate()
