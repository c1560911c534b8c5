"""The reference stack end to end on 127.0.0.1: the demo model server behind the sidecar,
the stats service, real Prometheus with the repository's rules, real Alertmanager with the
repository's configuration, and a webhook receiver standing in for people.

Stationary traffic raises no drift alert and every rule evaluates cleanly; drift injected
on one feature reaches the webhook as MlmonFeatureDrift for that feature (the seconds
from drift onset to the notification are printed: run with -s, or see the `user_properties`
in a JUnit report); every dashboard panel's PromQL and every rule expression runs on that
Prometheus, and every panel shows data. The traffic posts ground truth, so the performance
panels have labelled rows; the events regular traffic never produces (a payload parse
error, a missing value, a non-finite prediction, an upstream error) are caused while the
panels are checked (tests/support/incidents.py), and their panels must show them: a value
above 0, not only a series at 0. The stack runs the demo's candidate model as a shadow
(`StackOptions(candidate=True)`), so the Releases dashboard compares it with the primary,
and the check moves the traffic to the fallback and back on the sidecar's admin listener
(its "Route switches" panel). The baseline keeps reference rows (the training data's
label and `proba_default`), so the estimated-performance figures exist too.

Settings that make a test of minutes out of a pipeline of hours: scrape and rule
evaluation every second, the stats service evaluating a 30 s window every second, every
rule's `for:` rewritten to FOR_S seconds, Alertmanager's group_wait and group_interval
1 s. The detector's false-alarm rate is 0.1% instead of 1%: the stationary phase must not
alert, and at 1% per feature and evaluated window a false alarm among 6 features, the
predictions and the multivariate detector would come now and then; the drift injected
(+1.5 std) scores far above either threshold.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from examples.drift import DriftSpec
from examples.stack import (
    AlertmanagerOptions,
    Notification,
    PrometheusOptions,
    Stack,
    StackOptions,
)
from examples.stack_config import rule_expressions
from examples.traffic import TrafficConfig
from grafana.generate import PanelQuery, panel_queries
from tests.support.incidents import INCIDENTS, Incidents
from tests.support.processes import require_binary
from tests.support.releases import admin

pytestmark = pytest.mark.slow

MODEL = "credit"
DRIFTED = "income"
WINDOW = "30s"
MIN_SAMPLES = 500
FOR_S = 3.0
STATIONARY_S = 15.0  # of rules evaluating full windows before drift starts
# Functional timeouts only (the figures printed are the measurement).
WINDOW_READY_TIMEOUT_S = 90.0
ALERT_TIMEOUT_S = 120.0
PANELS_TIMEOUT_S = 30.0
DRIFT_CATEGORY = "drift"
# Panels of events regular traffic does not produce -> the incident (INCIDENTS) that
# causes it. Grafana draws the others from the traffic alone.
EVENT_PANELS = {
    ("mlmon-service-health", "Upstream errors by reason"): "upstream_error",
    ("mlmon-predictions", "Non-finite predictions"): "non_finite",
    ("mlmon-data-quality", "Payload parse errors"): "parse_error",
    ("mlmon-data-quality", "Feature issues (share of rows)"): "missing_value",
    ("mlmon-data-quality", "Feature issues rate"): "missing_value",
}


@dataclass
class Run:
    stack: Stack
    rules_at_onset: list[dict[str, Any]] = field(default_factory=list)
    notified_before_onset: list[Notification] = field(default_factory=list)
    onset: float = math.nan
    drift_notification: Notification | None = None


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else base + path
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def query(stack: Stack, expr: str) -> dict[str, Any]:
    """Prometheus's whole answer to an instant query (status, data or error)."""
    assert stack.urls.prometheus is not None
    try:
        document: dict[str, Any] = api(stack.urls.prometheus, "/api/v1/query", query=expr)
    except urllib.error.HTTPError as exc:  # 400/422: a bad expression, with its message
        document = json.loads(exc.read())
    return document


def values(answer: dict[str, Any]) -> list[float]:
    """The finite values of an instant query's answer: NaN (e.g. a quantile of no
    requests) draws nothing."""
    data = answer.get("data") or {}
    result = data.get("result") or []
    if data.get("resultType") == "scalar":
        result = [{"value": result}] if result else []
    found = [float(item["value"][1]) for item in result if "value" in item]
    return [value for value in found if math.isfinite(value)]


def has_data(answer: dict[str, Any]) -> bool:
    return bool(values(answer))


def shows(stack: Stack, panel: PanelQuery) -> bool:
    """The panel draws something; an event panel, the event (a value above 0)."""
    found = values(query(stack, panel.expr))
    if (panel.dashboard, panel.panel) in EVENT_PANELS:
        return any(value > 0 for value in found)
    return bool(found)


def window_evaluated(stack: Stack) -> bool:
    expr = f'mlmon_window_samples{{model="{MODEL}", window="{WINDOW}"}} >= {MIN_SAMPLES}'
    return has_data(query(stack, expr)) and has_data(
        query(stack, f'mlmon_feature_drift_score{{model="{MODEL}", window="{WINDOW}"}}')
    )


def all_rules(stack: Stack) -> list[dict[str, Any]]:
    assert stack.urls.prometheus is not None
    groups = api(stack.urls.prometheus, "/api/v1/rules")["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def drift_alerts(notifications: list[Notification]) -> list[str]:
    return [
        f"{alert.name}{alert.labels}"
        for notification in notifications
        for alert in notification.alerts
        if alert.status == "firing" and alert.labels.get("category") == DRIFT_CATEGORY
    ]


def feature_drift(notification: Notification, feature: str) -> bool:
    return any(
        alert.status == "firing"
        and alert.name == "MlmonFeatureDrift"
        and alert.labels.get("feature") == feature
        for alert in notification.alerts
    )


def wait(condition: Any, timeout_s: float, stack: Stack, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        stack.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:g} s\n{stack.log_tails()}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    for binary in ("prometheus", "prometheus-alertmanager", "envsubst"):
        require_binary(binary)
    options = StackOptions(
        windows=(WINDOW,),
        stats_interval_s=1.0,
        min_samples=MIN_SAMPLES,
        drift={"false_alarm_rate": 0.001},
        candidate=True,
        prometheus=PrometheusOptions(
            scrape_interval_s=1.0, evaluation_interval_s=1.0, for_override_s=FOR_S
        ),
        alertmanager=AlertmanagerOptions(
            group_wait_s=1.0, group_interval_s=1.0, repeat_interval_s=3600.0
        ),
        startup_timeout_s=90.0,
        stop_grace_s=5.0,
    )
    with Stack(tmp_path_factory.mktemp("stack"), options) as stack:
        result = Run(stack)
        url = stack.urls.sidecar
        stationary = stack.start_traffic(TrafficConfig(url, duration_s=None, seed=1))
        wait(lambda: window_evaluated(stack), WINDOW_READY_TIMEOUT_S, stack, "no full window")
        # Rules evaluate full stationary windows for several times their (shortened) `for:`.
        time.sleep(STATIONARY_S)
        result.rules_at_onset = all_rules(stack)
        stationary.stop()
        result.notified_before_onset = stack.notifications
        drifting = stack.start_traffic(
            TrafficConfig(url, duration_s=None, drift_after_s=0.0, drift=DriftSpec(DRIFTED), seed=2)
        )
        onset = drifting.wait_for_drift(timeout_s=30.0)
        assert onset is not None, f"no drifted request sent: {drifting.stop()}"
        result.onset = onset
        assert stack.webhook is not None
        result.drift_notification = stack.webhook.wait_for(
            lambda n: feature_drift(n, DRIFTED), ALERT_TIMEOUT_S
        )
        stack.check_alive()
        yield result


def test_stationary_traffic_raises_no_drift_alert_and_every_rule_evaluates(run: Run) -> None:
    assert drift_alerts(run.notified_before_onset) == []
    rules = run.rules_at_onset
    assert len(rules) == len(rule_expressions())
    failing = [
        f"{rule['name']}: {rule.get('health')} {rule.get('lastError', '')}"
        for rule in rules
        if rule.get("health") != "ok" or rule.get("lastError")
    ]
    assert failing == []


def test_drift_on_one_feature_reaches_the_webhook_for_that_feature_only(
    run: Run, record_property: Any
) -> None:
    notification = run.drift_notification
    assert notification is not None, (
        f"no MlmonFeatureDrift for {DRIFTED} within {ALERT_TIMEOUT_S:g} s; notifications: "
        f"{[(n.receiver, [a.labels for a in n.alerts]) for n in run.stack.notifications]}\n"
        f"{run.stack.log_tails()}"
    )
    delay = notification.received_at - run.onset
    record_property("drift_onset_to_notification_s", round(delay, 1))
    print(f"\ndrift onset -> MlmonFeatureDrift({DRIFTED}) at the webhook: {delay:.1f} s")
    for received in run.stack.notifications:
        print(
            f"  +{received.received_at - run.onset:6.1f} s {received.receiver}: "
            + ", ".join(
                f"{a.status} {a.name} {a.labels.get('feature', '')}" for a in received.alerts
            )
        )
    (alert,) = [a for a in notification.alerts if a.labels.get("feature") == DRIFTED]
    assert alert.labels["model"] == MODEL
    assert alert.labels["window"] == WINDOW
    assert alert.labels["severity"] == "warning"
    assert DRIFTED in alert.annotations["summary"]
    assert alert.annotations["runbook_url"].endswith("#mlmonfeaturedrift")
    assert notification.receiver == "mlmon-ml-team"
    drifted_features = {
        a.labels.get("feature")
        for n in run.stack.notifications
        for a in n.alerts
        if a.name == "MlmonFeatureDrift" and a.status == "firing"
    }
    assert drifted_features == {DRIFTED}


def test_every_dashboard_and_rule_query_runs_and_every_panel_shows_data(run: Run) -> None:
    stack = run.stack
    # `interval` stands for Grafana's $__rate_interval: at least 4 scrape intervals.
    panels = panel_queries({"model": MODEL}, interval="10s", time_range="5m")
    rejected = {}
    for name, expr in rule_expressions().items():
        answer = query(stack, expr)
        if answer.get("status") != "success":
            rejected[f"rule {name}"] = answer.get("error")
    for panel in panels:
        answer = query(stack, panel.expr)
        if answer.get("status") != "success":
            rejected[f"{panel.dashboard} / {panel.panel}: {panel.expr}"] = answer.get("error")
    assert rejected == {}

    titles = {(panel.dashboard, panel.panel) for panel in panels}
    assert sorted(set(EVENT_PANELS) - titles) == [], "EVENT_PANELS names panels that are gone"
    assert set(EVENT_PANELS.values()) <= set(INCIDENTS)

    # Data can lag a scrape or an evaluation behind, and a rate needs two scrapes of
    # an event: retry the empty ones for a while, the incidents going on meanwhile.
    # A round trip: the incidents need the model server, not the fallback, to answer.
    switch_route(stack, "fallback")
    switch_route(stack, "primary")
    with Incidents(stack.urls.sidecar) as incidents:
        empty = panels
        deadline = time.monotonic() + PANELS_TIMEOUT_S
        while empty and time.monotonic() < deadline:
            empty = [panel for panel in empty if not shows(stack, panel)]
            if empty:
                time.sleep(1.0)
    sent = incidents.sent
    quiet = sorted({f"{panel.dashboard} / {panel.panel}" for panel in empty})
    print(
        f"\n{len(titles)} panels ({len(EVENT_PANELS)} of them showing caused events, "
        f"{sum(sum(c.values()) for c in sent.answers.values())} incident requests), "
        f"{len(panels)} panel queries, {len(rule_expressions())} rule expressions; "
        f"without data: {'; '.join(quiet) or 'none'}"
    )
    expected = {name: incident.status for name, incident in INCIDENTS.items()}
    assert sent.unexpected() == {}, f"the sidecar should have answered {expected}"
    assert [without_data(panel) for panel in empty] == []


def switch_route(stack: Stack, route: str) -> None:
    """Move the model's traffic on the sidecar's admin listener, as an operator would."""
    assert stack.urls.admin is not None and stack.urls.admin_token_file is not None
    with open(stack.urls.admin_token_file) as file:
        token = file.read().strip()
    answer = admin(stack.urls.admin, "POST", f"/routes/{MODEL}", {"route": route}, token)
    assert answer.status == 200, answer.body
    assert answer.json() == {"model": MODEL, "route": route, "switched": True}


def without_data(panel: PanelQuery) -> str:
    incident = EVENT_PANELS.get((panel.dashboard, panel.panel))
    cause = f" (no value above 0 while sending {incident!r} incidents)" if incident else ""
    return f"{panel.dashboard} / {panel.panel}: {panel.expr}{cause}"
