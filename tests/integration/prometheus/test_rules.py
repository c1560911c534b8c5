"""Prometheus configuration, recording and alert rules, and the Alertmanager configuration,
checked with the real promtool and amtool, and Alertmanager's inhibition and grouping
exercised on a real Alertmanager on 127.0.0.1."""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from exporter.metrics import make_metrics
from exporter.release_settings import DEFAULT_FALLBACK_ALERTS
from stats_service.service import collector
from tests.integration.prometheus.runbooks import PLACEHOLDER, github_anchors
from tests.support.processes import free_port, require_binary, running

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "rules" / "tests").glob("*.yml"))
README = PROMETHEUS / "README.md"
ALERTMANAGER_TEMPLATE = PROMETHEUS / "alertmanager.yml.tmpl"
# The template rendered with EXAMPLE_VALUES (docker-compose's defaults), shipped as is.
ALERTMANAGER_EXAMPLE = PROMETHEUS / "alertmanager.example.yml"
# The sidecar's admin listener: it gets the alerts its fallback.on_alerts acts on by default,
# on top of (never instead of) the people's receiver.
FALLBACK_RECEIVER = "mlmon-fallback"
PEOPLE_RECEIVERS = {"mlmon-webhook", "mlmon-oncall", "mlmon-platform", "mlmon-ml-team"}
SEVERITIES = {"critical", "warning", "info"}
CATEGORIES = {"service", "pipeline", "drift", "data_quality", "performance"}
MODEL_CATEGORIES = {"service", "drift", "data_quality", "performance"}
REQUIRED_VARIABLES = (
    "MLMON_ALERT_WEBHOOK_URL",
    "MLMON_ALERT_EMAIL_TO",
    "MLMON_ALERT_EMAIL_FROM",
    "MLMON_SMTP_SMARTHOST",
)
OPTIONAL_VARIABLES = ("MLMON_SMTP_USERNAME", "MLMON_SLACK_CHANNEL")
EXAMPLE_VALUES = {
    "MLMON_ALERT_WEBHOOK_URL": "http://webhook.example.org/mlmon",
    "MLMON_ALERT_EMAIL_TO": "mlmon@example.org",
    "MLMON_ALERT_EMAIL_FROM": "alertmanager@example.org",
    "MLMON_SMTP_SMARTHOST": "smtp.example.org:587",
    "MLMON_SMTP_USERNAME": "",
    "MLMON_SLACK_CHANNEL": "",
}


def run(*cmd: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """Run a command; its standard output, asserting it succeeded."""
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=env, input=stdin, check=False
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of kind "alert" or "record" in prometheus/rules/*.yml."""
    return [
        rule
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


ALERTS = rules("alert")
ALERT_NAMES = [rule["alert"] for rule in ALERTS]


# ---------------------------------------------------------------- promtool


def test_prometheus_config_is_valid_and_loads_every_rule_file() -> None:
    output = run(require_binary("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output
    for path in RULE_FILES:
        assert f"Checking {path}" in output


def test_rule_files_are_valid() -> None:
    output = run(require_binary("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert output.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_rule_unit_tests_pass(path: Path) -> None:
    run(require_binary("promtool"), "test", "rules", str(path))


def test_prometheus_scrapes_the_stack_and_alerts_to_alertmanager() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    # The rules recognise mlmon's targets by these job names.
    assert targets["mlmon-exporter"] == ["exporter:8000"]
    assert targets["mlmon-stats"] == ["stats:8001"]
    assert targets["alertmanager"] == ["alertmanager:9093"]
    assert "prometheus" in targets
    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    loaded = {
        path
        for pattern in config["rule_files"]
        for path in RULE_FILES
        if fnmatch.fnmatch(str(path.relative_to(PROMETHEUS)), pattern)
    }
    assert loaded == set(RULE_FILES)


def test_rules_hold_nothing_environment_specific() -> None:
    for path in RULE_FILES:
        text = path.read_text()
        for specific in ("exporter:8000", "stats:8001", "localhost", "127.0.0.1"):
            assert specific not in text, f"{path.name} names {specific}"
        assert not re.search(r'instance\s*=~?\s*"', text), f"{path.name} selects an instance"


def exported_series() -> set[str]:
    """Series names the sidecar (a real registry) and the stats service (its collector's
    source) export, plus the per-target series Prometheus adds."""
    registry = CollectorRegistry()
    for metric in vars(make_metrics(registry)).values():
        assert isinstance(metric, MetricWrapperBase)
        if metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    sidecar = {sample.name for family in registry.collect() for sample in family.samples}
    gauges = {family.name for family in collector.FAMILIES}
    counters = {f"{name}_total" for name in collector.COUNTERS}
    return sidecar | gauges | counters | {"up"}


def test_rules_use_only_exported_metrics_and_recorded_rules() -> None:
    # expressions, and annotations (their templates query thresholds)
    exprs = [rule["expr"] for rule in rules("record")] + [
        text for rule in ALERTS for text in (rule["expr"], *rule["annotations"].values())
    ]
    raw = {name for expr in exprs for name in re.findall(r"(?<![\w:])mlmon_\w+(?![\w:])", expr)}
    assert raw - exported_series() == set()
    referenced = {name for expr in exprs for name in re.findall(r"\b\w+:\w+:\w+\b", expr)}
    recorded = {rule["record"] for rule in rules("record")}
    # alert_max has no default: users record their own (prometheus/README.md).
    assert referenced - recorded == {"metric:mlmon_model_performance:alert_max"}


# ---------------------------------------------------------------- what the tests cover


def rule_tests() -> list[dict[str, Any]]:
    return [test for path in RULE_TESTS for test in load(path)["tests"]]


def test_rule_tests_load_every_rule_file() -> None:
    loaded = {
        (path.parent / name).resolve() for path in RULE_TESTS for name in load(path)["rule_files"]
    }
    assert loaded == {path.resolve() for path in RULE_FILES}


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in rule_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert set(ALERT_NAMES) - firing == set(), "alerts never tested firing"
    assert set(ALERT_NAMES) - quiet == set(), "alerts never tested not firing"
    assert (firing | quiet) - set(ALERT_NAMES) == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_tested() -> None:
    tested = " ".join(
        case["expr"]
        for test in rule_tests()
        for case in test.get("promql_expr_test", [])
        if case["exp_samples"]
    )
    untested = {
        rule["record"]
        for rule in rules("record")
        if not re.search(rf"{re.escape(rule['record'])}(?![\w:])", tested)
    }
    assert untested == set()


# ---------------------------------------------------------------- alert metadata


def test_alert_names_are_unique() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_alert_has_for_severity_summary_and_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), "needs a for: duration"
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["category"] in CATEGORIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    summary = annotations["summary"]
    if rule["labels"]["category"] in MODEL_CATEGORIES:
        assert "$labels.model" in summary
    if "mlmon_feature_" in rule["expr"]:
        assert "$labels.feature" in summary
    # The base URL is rendered before Prometheus loads the rules (test_runbooks.py).
    assert annotations["runbook_url"] == f"{PLACEHOLDER}#{rule['alert'].lower()}"


def test_every_runbook_anchor_exists_in_the_readme() -> None:
    anchors = github_anchors(README.read_text())
    missing = [rule["alert"] for rule in ALERTS if rule["alert"].lower() not in anchors]
    assert missing == []


def test_readme_alert_table_matches_the_rules() -> None:
    rows = re.findall(
        r"^\| \[(\w+)\]\(#\w+\) \|.*\| (\w+) \| (\w+) \|$", README.read_text(), re.MULTILINE
    )
    documented = {name: (duration, severity) for name, duration, severity in rows}
    actual = {rule["alert"]: (rule["for"], rule["labels"]["severity"]) for rule in ALERTS}
    assert documented == actual


# ---------------------------------------------------------------- Alertmanager configuration


def placeholders(text: str) -> list[str]:
    return sorted(set(re.findall(r"\$\{(MLMON_[A-Z_]+)\}", text)))


def example_values() -> dict[str, str]:
    return {
        "MLMON_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/alerts",
        "MLMON_ALERT_EMAIL_TO": "ml-oncall@example.org",
        "MLMON_ALERT_EMAIL_FROM": "alertmanager@example.org",
        "MLMON_SMTP_SMARTHOST": f"127.0.0.1:{free_port()}",
        "MLMON_SMTP_USERNAME": "alertmanager",
        "MLMON_SLACK_CHANNEL": "#ml-alerts",
    }


def render(values: dict[str, str]) -> str:
    """The template rendered the documented way: envsubst limited to mlmon's variables."""
    template = ALERTMANAGER_TEMPLATE.read_text()
    shell_format = " ".join(f"${name}" for name in REQUIRED_VARIABLES + OPTIONAL_VARIABLES)
    return run(require_binary("envsubst"), shell_format, env=values, stdin=template)


def render_to(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render(values))
    return path


def test_template_variables_are_the_documented_ones() -> None:
    template = ALERTMANAGER_TEMPLATE.read_text()
    assert placeholders(template) == sorted(REQUIRED_VARIABLES + OPTIONAL_VARIABLES)
    readme = README.read_text()
    for name in REQUIRED_VARIABLES:
        assert f"| `{name}` | yes |" in readme
    for name in OPTIONAL_VARIABLES:
        assert f"| `{name}` | no |" in readme
    command = " ".join(f"${name}" for name in REQUIRED_VARIABLES + OPTIONAL_VARIABLES)
    assert f"envsubst '{command}'" in readme
    assert f"envsubst '{command.replace('$', '$$')}'" in readme  # the docker-compose service


def test_rendering_replaces_only_the_variables() -> None:
    values = example_values()
    expected = ALERTMANAGER_TEMPLATE.read_text()
    for name, value in values.items():
        expected = expected.replace("${" + name + "}", value)
    rendered = render(values)
    assert rendered == expected
    assert "{{ .CommonLabels.alertname }}" in rendered


def test_shipped_example_is_the_template_rendered_with_the_example_values() -> None:
    assert ALERTMANAGER_EXAMPLE.read_text() == render(EXAMPLE_VALUES), (
        "alertmanager.example.yml is stale: render the template again (prometheus/README.md)"
    )


def test_shipped_example_passes_amtool_as_it_is() -> None:
    output = run(require_binary("amtool"), "check-config", str(ALERTMANAGER_EXAMPLE))
    assert "SUCCESS" in output
    assert "2 inhibit rules" in output
    receivers = {receiver["name"] for receiver in load(ALERTMANAGER_EXAMPLE)["receivers"]}
    assert receivers == PEOPLE_RECEIVERS | {FALLBACK_RECEIVER}
    assert f"{len(receivers)} receivers" in output


def test_readme_command_regenerates_the_example(tmp_path: Path) -> None:
    """The documented command, run from a copy of the repository's layout, writes exactly
    the shipped example."""
    require_binary("envsubst")
    blocks = re.findall(r"^```sh\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    [script] = [block for block in blocks if "> prometheus/alertmanager.example.yml" in block]
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / ALERTMANAGER_TEMPLATE.name).write_text(
        ALERTMANAGER_TEMPLATE.read_text()
    )
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "prometheus" / ALERTMANAGER_EXAMPLE.name
    assert written.read_text() == ALERTMANAGER_EXAMPLE.read_text()


def test_rendered_config_passes_amtool(tmp_path: Path) -> None:
    output = run(
        require_binary("amtool"), "check-config", str(render_to(tmp_path, example_values()))
    )
    assert "SUCCESS" in output
    assert "2 inhibit rules" in output


@pytest.mark.parametrize("name", OPTIONAL_VARIABLES)
def test_optional_variable_may_be_empty(tmp_path: Path, name: str) -> None:
    values = {**example_values(), name: ""}
    run(require_binary("amtool"), "check-config", str(render_to(tmp_path, values)))


@pytest.mark.parametrize("name", REQUIRED_VARIABLES)
def test_unset_required_variable_is_refused(tmp_path: Path, name: str) -> None:
    values = {key: value for key, value in example_values().items() if key != name}
    path = render_to(tmp_path, values)
    result = subprocess.run(
        [require_binary("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


ROUTES = [
    ("severity=critical category=pipeline alertname=MlmonSidecarDown model=m", "mlmon-oncall"),
    ("severity=critical category=service alertname=MlmonHighErrorRate model=m", "mlmon-oncall"),
    ("severity=info category=service alertname=MlmonModelVersionStale model=m", "mlmon-webhook"),
    ("severity=warning category=pipeline alertname=MlmonInputLogSpooling", "mlmon-platform"),
    (
        "severity=warning category=pipeline alertname=MlmonWindowEvaluationFailing model=m",
        "mlmon-platform",
    ),
    (
        "severity=warning category=drift alertname=MlmonFeatureDrift model=m feature=f",
        "mlmon-ml-team",
    ),
    (
        "severity=warning category=drift alertname=MlmonDatasetDrift model=m window=1h",
        "mlmon-ml-team",
    ),
    (
        "severity=warning category=drift alertname=MlmonPredictionDrift model=m window=1h",
        "mlmon-ml-team",
    ),
    (
        "severity=warning category=performance alertname=MlmonModelPerformanceLow model=m",
        "mlmon-ml-team",
    ),
    ("severity=warning category=service alertname=MlmonHighLatency model=m", "mlmon-ml-team"),
    ("alertname=SomethingElse", "mlmon-webhook"),
]


def routed_receivers(config: Path, labels: list[str]) -> list[str]:
    """The receivers Alertmanager notifies for an alert with these labels, in route order."""
    output = run(
        require_binary("amtool"), "config", "routes", "test", f"--config.file={config}", *labels
    )
    return output.splitlines()[-1].strip().split(",")


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[labels for labels, _ in ROUTES])
def test_alerts_route_by_severity_category_and_model(
    tmp_path: Path, labels: str, receiver: str
) -> None:
    """People's routing is the same whether or not an alert may also trigger a fallback; the
    fallback receiver comes first and continues to them."""
    alertname = dict(label.split("=", 1) for label in labels.split())["alertname"]
    fallback = [FALLBACK_RECEIVER] if alertname in DEFAULT_FALLBACK_ALERTS else []
    config = render_to(tmp_path, example_values())
    assert routed_receivers(config, labels.split()) == [*fallback, receiver]


def test_every_alert_routes_to_a_receiver_that_notifies_a_person(tmp_path: Path) -> None:
    """Only info alerts stop at the webhook; all others reach email or Slack. The sidecar's
    admin listener gets exactly the alerts its fallback acts on by default, in addition."""
    config = render_to(tmp_path, example_values())
    for rule in ALERTS:
        labels = {"alertname": rule["alert"], **rule["labels"], "model": "m"}
        if "mlmon_feature_" in rule["expr"]:
            labels["feature"] = "f"
        receivers = routed_receivers(config, [f"{key}={value}" for key, value in labels.items()])
        may_fall_back = rule["alert"] in DEFAULT_FALLBACK_ALERTS
        assert (receivers[0] == FALLBACK_RECEIVER) == may_fall_back, (rule["alert"], receivers)
        [receiver] = [name for name in receivers if name != FALLBACK_RECEIVER]
        assert receiver in PEOPLE_RECEIVERS, (rule["alert"], receivers)
        expected_webhook_only = rule["labels"]["severity"] == "info"
        assert (receiver == "mlmon-webhook") == expected_webhook_only, (rule["alert"], receiver)


def test_every_alert_the_fallback_acts_on_exists() -> None:
    assert set(DEFAULT_FALLBACK_ALERTS) <= set(ALERT_NAMES)


# ---------------------------------------------------------------- a live Alertmanager


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, *alerts: dict[str, str]) -> None:
        now = datetime.datetime.now(datetime.UTC)
        body = [
            {
                "labels": labels,
                "annotations": {"summary": labels["alertname"]},
                "startsAt": now.isoformat(),
                "endsAt": (now + datetime.timedelta(hours=1)).isoformat(),
            }
            for labels in alerts
        ]
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.load(response)

    def until(self, path: str, check: Callable[[Any], bool], timeout: float = 30) -> Any:
        """GET path until check holds: Alertmanager applies posted alerts asynchronously."""
        deadline = time.monotonic() + timeout
        answer = self.get(path)
        while not check(answer) and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = self.get(path)
        return answer


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = require_binary("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("alertmanager")
    # Receivers point at closed local ports: notifications fail quietly, nothing leaves.
    config = render_to(tmp, example_values())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(cmd, ready_url=f"{url}/-/ready", log=tmp / "alertmanager.log"):
        yield Alertmanager(url)


def status(alerts: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    [alert] = [a for a in alerts if labels.items() <= a["labels"].items()]
    return dict(alert["status"])


def test_sidecar_down_inhibits_its_models_alerts(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        {"alertname": "MlmonSidecarDown", "severity": "critical", "category": "pipeline",
         "job": "mlmon-exporter", "instance": "a:8000", "model": "inh-a"},
        {"alertname": "MlmonFeatureDrift", "severity": "warning", "category": "drift",
         "model": "inh-a", "window": "1h", "feature": "age"},
        {"alertname": "MlmonTrafficDrop", "severity": "warning", "category": "service",
         "model": "inh-a"},
        {"alertname": "MlmonFeatureDrift", "severity": "warning", "category": "drift",
         "model": "inh-b", "window": "1h", "feature": "age"},
    )  # fmt: skip

    def settled(alerts: list[dict[str, Any]]) -> bool:
        mine = [a for a in alerts if a["labels"].get("model") == "inh-a"]
        return len(mine) == 3 and sum(bool(a["status"]["inhibitedBy"]) for a in mine) == 2

    alerts = alertmanager.until("/api/v2/alerts", settled)
    assert status(alerts, alertname="MlmonFeatureDrift", model="inh-a")["state"] == "suppressed"
    assert status(alerts, alertname="MlmonTrafficDrop", model="inh-a")["state"] == "suppressed"
    assert status(alerts, alertname="MlmonSidecarDown", model="inh-a")["state"] == "active"
    # another model's alert is not affected
    assert status(alerts, alertname="MlmonFeatureDrift", model="inh-b")["inhibitedBy"] == []


def test_stats_service_down_inhibits_only_its_own_figures(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        {"alertname": "MlmonStatsServiceDown", "severity": "warning", "category": "pipeline",
         "job": "mlmon-stats", "instance": "s1:8001"},
        {"alertname": "MlmonDatasetDrift", "severity": "warning", "category": "drift",
         "job": "mlmon-stats", "instance": "s1:8001", "model": "inh-c", "window": "1h"},
        {"alertname": "MlmonDatasetDrift", "severity": "warning", "category": "drift",
         "job": "mlmon-stats", "instance": "s2:8001", "model": "inh-c", "window": "1h"},
        {"alertname": "MlmonHighLatency", "severity": "warning", "category": "service",
         "model": "inh-c"},
    )  # fmt: skip

    def settled(alerts: list[dict[str, Any]]) -> bool:
        mine = [a for a in alerts if a["labels"].get("model") == "inh-c"]
        return len(mine) == 3 and any(a["status"]["inhibitedBy"] for a in mine)

    alerts = alertmanager.until("/api/v2/alerts", settled)
    assert status(alerts, model="inh-c", instance="s1:8001")["state"] == "suppressed"
    assert status(alerts, model="inh-c", instance="s2:8001")["inhibitedBy"] == []
    assert status(alerts, alertname="MlmonHighLatency", model="inh-c")["inhibitedBy"] == []


def test_feature_alerts_group_per_feature_and_window_alerts_per_window(
    alertmanager: Alertmanager,
) -> None:
    drift = {"severity": "warning", "category": "drift", "model": "grp"}
    alertmanager.post(
        {**drift, "alertname": "MlmonFeatureDrift", "feature": "age", "window": "5m"},
        {**drift, "alertname": "MlmonFeatureDrift", "feature": "age", "window": "1h"},
        {**drift, "alertname": "MlmonFeatureDrift", "feature": "income", "window": "1h"},
        {**drift, "alertname": "MlmonDatasetDrift", "window": "5m"},
        {**drift, "alertname": "MlmonDatasetDrift", "window": "1h"},
    )

    def mine(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [g for g in groups if g["labels"].get("model") == "grp"]

    groups = mine(
        alertmanager.until(
            "/api/v2/alerts/groups",
            # five for the people, and both dataset drift alerts for the admin listener
            lambda groups: sum(len(g["alerts"]) for g in mine(groups)) == 7,
        )
    )
    summary = sorted(
        (g["receiver"]["name"], json.dumps(g["labels"], sort_keys=True), len(g["alerts"]))
        for g in groups
    )
    expected = [
        # one notification per model for the sidecar, whatever the window: it moves the model
        (FALLBACK_RECEIVER, {"alertname": "MlmonDatasetDrift", "model": "grp"}, 2),
        ("mlmon-ml-team", {"alertname": "MlmonDatasetDrift", "model": "grp", "window": "1h"}, 1),
        ("mlmon-ml-team", {"alertname": "MlmonDatasetDrift", "model": "grp", "window": "5m"}, 1),
        ("mlmon-ml-team", {"alertname": "MlmonFeatureDrift", "feature": "age", "model": "grp"}, 2),
        (
            "mlmon-ml-team",
            {"alertname": "MlmonFeatureDrift", "feature": "income", "model": "grp"},
            1,
        ),
    ]
    assert summary == sorted(
        (receiver, json.dumps(labels, sort_keys=True), count)
        for receiver, labels, count in expected
    )
