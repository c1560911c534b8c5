"""Every alert links to its runbook: the section of prometheus/README.md named after it, at
$MLMON_RUNBOOK_BASE_URL. The rules ship with that placeholder; it is rendered the way the
Alertmanager template is (envsubst limited to the variable: docker-compose; the same
substitution in Python: the local stack), by default to the README as the deployment's
Prometheus serves it. Checked here on rendered copies and on a real Prometheus on
127.0.0.1 serving the local stack's rules (docker-compose's render step:
tests/integration/compose)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from examples import stack_components as components
from examples.stack_config import RUNBOOK_VARIABLE, copy_rules
from examples.stack_options import PrometheusOptions
from tests.integration.prometheus.runbooks import (
    PLACEHOLDER,
    RULES_DIR,
    RUNBOOKS,
    assert_promtool_accepts,
    github_anchors,
    runbook_urls,
    split_runbook_url,
)
from tests.support.processes import free_port, require_binary, running

CUSTOM = "https://runbooks.example.org/ml/mlmon.md"
README = RULES_DIR.parents[1] / "README.md"
ALERTS = sorted(runbook_urls(RULES_DIR))


def envsubst(text: str, base_url: str) -> str:
    """What docker-compose's prometheus-rules step does to each rule file."""
    result = subprocess.run(
        [require_binary("envsubst"), f"${RUNBOOK_VARIABLE}"],
        input=text,
        env={RUNBOOK_VARIABLE: base_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        body: bytes = response.read()
        return body


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    sections = re.findall(r"^### (Mlmon\w+)$", RUNBOOKS.read_text(), re.MULTILINE)
    assert sorted(sections) == ALERTS


def test_the_readme_counts_the_alerts_there_are() -> None:
    [count] = re.findall(r"\b(\d+) alerts, each with", README.read_text())
    assert int(count) == len(ALERTS)


def test_shipped_rules_link_every_alert_to_its_section_under_the_placeholder() -> None:
    anchors = github_anchors(RUNBOOKS.read_text())
    for alert, url in runbook_urls(RULES_DIR).items():
        base, anchor = split_runbook_url(url)
        assert base == PLACEHOLDER, alert
        assert anchor == alert.lower() and anchor in anchors, alert


def test_rendering_with_a_base_url_replaces_only_the_placeholder(tmp_path: Path) -> None:
    for source in sorted(RULES_DIR.glob("*.yml")):
        text = source.read_text()
        rendered = envsubst(text, CUSTOM)
        assert rendered == text.replace(PLACEHOLDER, CUSTOM), source.name
        (tmp_path / source.name).write_text(rendered)
    assert runbook_urls(tmp_path) == {alert: f"{CUSTOM}#{alert.lower()}" for alert in ALERTS}
    assert_promtool_accepts(tmp_path)


def test_the_local_stack_renders_the_rules_as_envsubst_does(tmp_path: Path) -> None:
    copied = copy_rules(tmp_path, None, runbook_base_url=CUSTOM)
    assert [path.name for path in copied] == [p.name for p in sorted(RULES_DIR.glob("*.yml"))]
    for path in copied:
        assert path.read_text() == envsubst((RULES_DIR / path.name).read_text(), CUSTOM)


def test_the_local_stack_uses_the_runbook_base_url_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNBOOK_VARIABLE, CUSTOM)
    options = PrometheusOptions(for_override_s=3.0)  # as the demo runs it
    components.prometheus(
        components.Layout(tmp_path), options, free_port(), {"sidecar": 1, "stats": 2}, None
    )
    rules = tmp_path / "prometheus" / "rules"
    assert runbook_urls(rules) == {alert: f"{CUSTOM}#{alert.lower()}" for alert in ALERTS}
    assert_promtool_accepts(rules)


def test_by_default_the_local_stack_prometheus_serves_every_runbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a person following an alert's link gets: the README, with the section."""
    monkeypatch.delenv(RUNBOOK_VARIABLE, raising=False)
    options = PrometheusOptions(binary=require_binary("prometheus"))
    targets = {"sidecar": free_port(), "stats": free_port()}  # nothing listens: no matter
    launch = components.prometheus(components.Layout(tmp_path), options, free_port(), targets, None)
    assert launch.url.startswith("http://127.0.0.1:")
    with running(launch.cmd, ready_url=f"{launch.url}/-/ready", log=tmp_path / "prometheus.log"):
        groups = json.loads(get(f"{launch.url}/api/v1/rules?type=alert"))["data"]["groups"]
        loaded = {
            rule["name"]: rule["annotations"]["runbook_url"]
            for group in groups
            for rule in group["rules"]
        }
        assert sorted(loaded) == ALERTS
        documents = {split_runbook_url(url)[0] for url in loaded.values()}
        assert documents == {f"{launch.url}/user/README.md"}
        served = {document: get(document) for document in documents}
    readme = RUNBOOKS.read_bytes()
    anchors = github_anchors(readme.decode())
    for alert, url in loaded.items():
        document, anchor = split_runbook_url(url)
        assert served[document] == readme
        assert anchor == alert.lower() and anchor in anchors, alert
