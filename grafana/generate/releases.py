"""Releases: a candidate model next to the primary. The routes (which one answers, and when
traffic switched), the canary and the primary side by side on what the sidecar measures,
a shadow's agreement, differences and latency, and the stats service's comparison over
its windows (distance between the two prediction distributions, performance of each)."""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    MODEL,
    PROMETHEUS,
    RATE,
    SHARE,
    STACKED,
    WINDOW,
    Style,
    max_by,
    prom,
    quantiles,
    query_variable,
    selector,
    sidecar_model_variable,
    sum_rate,
    value_mapping,
)
from grafana.generate.panels import states, timeseries

CANDIDATE = 'candidate=~"$candidate"'
SHADOW = f"{MODEL}, {CANDIDATE}"
COMPARED = f"{MODEL}, {CANDIDATE}, {WINDOW}"
BY_ROUTE = "model, route"
ROUTE_LEGEND = "{{model}} {{route}}"
SHADOW_LEGEND = "{{model}} / {{candidate}}"
# Below this share of agreeing labels a shadow alerts (rules/releases.yml: 10% disagree).
AGREEMENT_STEPS = (("red", None), ("green", 0.9))


def build() -> Generated:
    board = Board(
        "mlmon-releases",
        "mlmon / Releases",
        "Shadow and canary models against the primary, and the fallback route: what the "
        "sidecar measures per route and candidate, and the stats service's comparison.",
        [
            sidecar_model_variable(),
            query_variable(
                "candidate",
                "Candidate",
                "Shadow candidates of the selected models (their configured names).",
                f"label_values(mlmon_shadow_requests_total{{{MODEL}}}, candidate)",
            ),
            query_variable(
                "window",
                "Window",
                "The stats service's evaluation windows of the comparison.",
                f"label_values(mlmon_candidate_samples{{{MODEL}}}, window)",
            ),
        ],
    )
    _routes_row(board)
    _canary_row(board)
    _shadow_row(board)
    _comparison_row(board)
    generated = board.generate()
    # Board lays out panels only; the one annotation of the mlmon dashboards goes here.
    generated.model["annotations"] = {"list": [_switches_annotation()]}
    return generated


def _switches_annotation() -> dict[str, object]:
    """Every switch of a model's traffic between routes, marked on every time series."""
    query = (
        dashboard_builders.AnnotationQuery()
        .name("Route switches")
        .datasource(PROMETHEUS)
        .enable(True)
        .icon_color("orange")
        .expr(
            f"sum by (model, from_route, to_route, reason) "
            f"(changes({selector('mlmon_route_switches_total', MODEL)}[1m])) > 0"
        )
    )
    annotation: dict[str, object] = json.loads(json.dumps(query.build(), cls=JSONEncoder))
    annotation["titleFormat"] = "{{model}}: {{from_route}} -> {{to_route}}"
    annotation["textFormat"] = "reason: {{reason}}"
    return annotation


def _error_ratio(by: str, matchers: str) -> str:
    """5xx share; 0 (not "no data") while no 5xx series exists yet."""
    errors = selector("mlmon_requests_total", f'{matchers}, code=~"5.."')
    requests = selector("mlmon_requests_total", matchers)
    return (
        f"(sum by ({by}) (rate({errors}[{RATE}])) or sum by ({by}) (rate({requests}[{RATE}])) * 0)"
        f" / sum by ({by}) (rate({requests}[{RATE}]))"
    )


def _routes_row(board: Board) -> None:
    board.row("Routes")
    board.add(
        states(
            "Active route",
            "Which route answers each model's traffic: the primary (with its canary, if "
            "any) or the fallback, after an admin call, an alert or the circuit breaker.",
            [prom(f"{max_by(BY_ROUTE, 'mlmon_route_active', MODEL)} == 1", ROUTE_LEGEND)],
            Style(mappings=(value_mapping({1: ("active", "green")}),)),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Route switches",
            "Switches between primary and fallback, by reason (admin, alert, "
            "alert_resolved, circuit_breaker, circuit_recovered). Also marked on every "
            'panel (annotation "Route switches").',
            [
                prom(
                    sum_rate(
                        "model, from_route, to_route, reason",
                        "mlmon_route_switches_total",
                        MODEL,
                        func="increase",
                    ),
                    "{{model}} {{from_route}} -> {{to_route}} ({{reason}})",
                )
            ],
            Style(unit="short", min=0, no_value="0"),
        ),
        may_be_empty=True,
    )


def _canary_row(board: Board) -> None:
    board.row("Canary and primary, side by side")
    board.add(
        timeseries(
            "Request rate by route",
            "Requests per second answered by each route, stacked: the canary's share of "
            "the model's traffic.",
            [prom(sum_rate(BY_ROUTE, "mlmon_requests_total", MODEL), ROUTE_LEGEND)],
            Style(unit="reqps", min=0),
            stack=STACKED,
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Error ratio (5xx) by route",
            "Share of each route's responses with a 5xx status. A canary 2 points above "
            "the primary alerts (MlmonCanaryErrorRate).",
            [prom(_error_ratio(BY_ROUTE, MODEL), ROUTE_LEGEND)],
            SHARE,
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Latency p50 / p99 by route",
            "End-to-end latency of each route's answers.",
            quantiles(BY_ROUTE, "mlmon_request_duration_seconds", MODEL, ROUTE_LEGEND),
            Style(unit="s", min=0),
        ),
        8,
        may_be_empty=True,
    )


def _shadow_row(board: Board) -> None:
    board.row("Shadow against primary (same requests)")
    agreement = selector("mlmon_shadow_agreement_total", SHADOW)
    agreeing = selector("mlmon_shadow_agreement_total", f'{SHADOW}, result="agree"')
    by = "model, candidate"
    board.add(
        timeseries(
            "Shadow agreement",
            "Share of rows where the shadow predicted the primary's label. Below 90% it "
            "alerts (MlmonShadowDisagreement, dashed line).",
            [
                prom(
                    f"sum by ({by}) (rate({agreeing}[{RATE}])) "
                    f"/ sum by ({by}) (rate({agreement}[{RATE}]))",
                    SHADOW_LEGEND,
                )
            ],
            Style(unit="percentunit", min=0, max=1, steps=AGREEMENT_STEPS),
            threshold_lines=True,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Prediction difference p50 / p90",
            "Absolute difference between the shadow's and the primary's numeric prediction "
            "or probability for the same row, in the prediction's units.",
            quantiles(by, "mlmon_shadow_prediction_abs_diff", SHADOW, SHADOW_LEGEND, (0.5, 0.9)),
            Style(unit="short", min=0),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Shadow model server vs primary's, p99",
            "How long the shadow's model server took to answer a copy, against the time "
            "the primary's took (the client never waits for the shadow).",
            [
                *quantiles(
                    by,
                    "mlmon_shadow_duration_seconds",
                    SHADOW,
                    SHADOW_LEGEND + " (shadow)",
                    (0.99,),
                ),
                *quantiles(
                    "model",
                    "mlmon_upstream_duration_seconds",
                    MODEL,
                    "{{model}} (primary)",
                    (0.99,),
                ),
            ],
            Style(unit="s", min=0),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Shadow copies by outcome",
            "Copies per second by the shadow's status code (or timeout, error), and copies "
            "dropped by reason (concurrency: max_in_flight reached; queue: analysis full).",
            [
                prom(
                    sum_rate("model, candidate, code", "mlmon_shadow_requests_total", SHADOW),
                    SHADOW_LEGEND + " {{code}}",
                ),
                prom(
                    sum_rate("model, candidate, reason", "mlmon_shadow_dropped_total", SHADOW),
                    SHADOW_LEGEND + " dropped: {{reason}}",
                ),
            ],
            Style(unit="reqps", min=0),
            stack=STACKED,
        ),
        may_be_empty=True,
    )


def _comparison_row(board: Board) -> None:
    board.row("Stats service: candidate against primary per window")
    legend = "{{model}} / {{candidate}} ({{window}})"
    board.add(
        timeseries(
            "Agreement over the window",
            "Share of a shadow's answers with the primary's predicted label, over the "
            "stats service's window (same request rows, read from the input log).",
            [
                prom(
                    max_by("model, candidate, window", "mlmon_candidate_agreement_ratio", COMPARED),
                    legend,
                )
            ],
            SHARE,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Distance between the prediction distributions",
            "Jensen-Shannon and Hellinger distance, and the KS statistic (numeric "
            "predictions), between the candidate's and the primary's predictions; 0 = the "
            "same distribution, 1 = disjoint.",
            [
                prom(
                    max_by(
                        "model, candidate, window, method",
                        "mlmon_candidate_prediction_distance",
                        f'{COMPARED}, method=~"jensenshannon|hellinger|ks"',
                    ),
                    "{{model}} / {{candidate}} {{method}} ({{window}})",
                )
            ],
            SHARE,
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Performance: primary and candidate",
            "Each side's quality over its answers whose ground truth arrived (a shadow: the "
            "same rows as the primary). role: primary, shadow or canary.",
            [
                prom(
                    max_by(
                        "model, candidate, window, role, metric",
                        "mlmon_candidate_performance",
                        COMPARED,
                    ),
                    "{{model}} / {{candidate}} {{role}} {{metric}} ({{window}})",
                )
            ],
            Style(unit="short"),
        ),
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Answers compared",
            "Answers of each side in the comparison (a shadow: pairs with the primary's "
            "answers to the same rows).",
            [
                prom(
                    max_by("model, candidate, window, role", "mlmon_candidate_samples", COMPARED),
                    "{{model}} / {{candidate}} {{role}} ({{window}})",
                )
            ],
            COUNT,
        ),
        may_be_empty=True,
    )
