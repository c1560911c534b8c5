"""Configuration files the local stack writes into its work directory.

Prometheus gets a generated prometheus.yml (127.0.0.1 targets, short intervals), a copy
of the repository's rules with their runbook base URL rendered, and a copy of the runbooks
(prometheus/README.md) to serve; Alertmanager gets the repository's template rendered the
documented way (envsubst limited to mlmon's variables, prometheus/README.md) with the
webhook pointing at the local receiver, then reduced to that webhook (same routes,
receiver names and inhibitions); the stats service gets its YAML settings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_TEMPLATE = REPO / "prometheus" / "alertmanager.yml.tmpl"
# The runbooks every alert's runbook_url points into (one section per alert), and the
# rules' placeholder for where they are published (prometheus/README.md, "Runbook links").
RUNBOOKS = REPO / "prometheus" / "README.md"
RUNBOOK_VARIABLE = "MLMON_RUNBOOK_BASE_URL"
# Where Prometheus serves the files of its --web.user-assets directory.
USER_ASSETS_PATH = "/user/"
# The only variables envsubst may replace (prometheus/README.md): nothing else in the
# template, Alertmanager's own {{ }} templates included, is touched.
ALERTMANAGER_VARIABLES = (
    "MLMON_ALERT_WEBHOOK_URL",
    "MLMON_ALERT_EMAIL_TO",
    "MLMON_ALERT_EMAIL_FROM",
    "MLMON_SMTP_SMARTHOST",
    "MLMON_SMTP_USERNAME",
    "MLMON_SLACK_CHANNEL",
)
# The rules recognise mlmon's targets by these job names (prometheus/README.md).
EXPORTER_JOB = "mlmon-exporter"
STATS_JOB = "mlmon-stats"


def duration(seconds: float) -> str:
    """Seconds as a Prometheus/Alertmanager duration ("1500ms"); at least 1 ms."""
    return f"{max(1, round(seconds * 1000))}ms"


def write_stats_config(
    path: Path,
    *,
    windows: Sequence[str],
    interval_s: float,
    min_samples: int,
    drift: Mapping[str, Any],
) -> Path:
    settings: dict[str, Any] = {
        "windows": list(windows),
        "interval_s": interval_s,
        "min_samples": min_samples,
    }
    if drift:
        settings["drift"] = dict(drift)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def substitute(text: str, values: Mapping[str, str]) -> str:
    """What `envsubst '$NAME ...'` does with the names of `values`: `$NAME` and `${NAME}`
    replaced, every other `$` (Prometheus's `$labels`, `$value`) left as it is."""
    if not values:
        return text
    names = "|".join(re.escape(name) for name in values)
    pattern = rf"\$(?:\{{({names})\}}|({names})(?!\w))"
    return re.sub(pattern, lambda match: values[match[1] or match[2]], text)


def publish_runbooks(directory: Path) -> Path:
    """A copy of the runbooks in `directory`, for Prometheus to serve with
    `--web.user-assets=directory` at resolve_runbook_base_url(its URL)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RUNBOOKS, directory / RUNBOOKS.name)
    return directory


def resolve_runbook_base_url(prometheus_url: str, environ: Mapping[str, str] = os.environ) -> str:
    """$MLMON_RUNBOOK_BASE_URL if set and not empty, else the runbooks as the Prometheus at
    `prometheus_url` serves them (publish_runbooks), as in docker-compose."""
    return environ.get(RUNBOOK_VARIABLE) or (
        f"{prometheus_url.rstrip('/')}{USER_ASSETS_PATH}{RUNBOOKS.name}"
    )


def copy_rules(target: Path, for_override_s: float | None, *, runbook_base_url: str) -> list[Path]:
    """prometheus/rules/*.yml into `target`, rendered like docker-compose renders them (the
    runbook base URL substituted); with `for_override_s`, every rule's `for:` becomes that
    many seconds (the real ones, 2 minutes to 1 hour, are for production)."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(RULES_DIR.glob("*.yml")):
        destination = target / source.name
        text = substitute(source.read_text(), {RUNBOOK_VARIABLE: runbook_base_url})
        if for_override_s is None:
            destination.write_text(text)
        else:
            document = yaml.safe_load(text)
            for rule in _rules(document):
                if "for" in rule:
                    rule["for"] = duration(for_override_s)
            destination.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
        written.append(destination)
    return written


def rule_expressions(rules_dir: Path = RULES_DIR) -> dict[str, str]:
    """Rule name (alert or record; `name#n` for a repeated record name) -> its PromQL."""
    found: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.yml")):
        for rule in _rules(yaml.safe_load(path.read_text())):
            name = str(rule.get("alert") or rule.get("record"))
            key, n = name, 1
            while key in found:
                n += 1
                key = f"{name}#{n}"
            found[key] = str(rule["expr"])
    return found


def _rules(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for group in document.get("groups") or []:
        yield from group.get("rules") or []


def write_prometheus_config(
    path: Path,
    *,
    targets: Mapping[str, str],
    rule_files: Sequence[Path],
    scrape_interval_s: float,
    evaluation_interval_s: float,
    alertmanager: str | None,
) -> Path:
    """`targets`: job name -> host:port. The jobs keep the names the rules select on."""
    interval = duration(scrape_interval_s)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": duration(evaluation_interval_s),
        },
        "rule_files": [str(file) for file in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# Global settings only email and Slack receivers read; the local stack has neither.
_NOTIFIER_GLOBALS = (
    "smtp_smarthost",
    "smtp_from",
    "smtp_auth_username",
    "smtp_auth_password_file",
    "smtp_require_tls",
    "slack_api_url_file",
)


def render_alertmanager_config(
    path: Path,
    *,
    envsubst: str,
    webhook_url: str,
    group_wait_s: float | None,
    group_interval_s: float | None,
    repeat_interval_s: float | None,
) -> Path:
    """The template through envsubst, reduced to the receivers the local stack has (every
    receiver keeps its name and only its webhook), then the routes' timers shortened where
    given: on the root route and on every sub-route that sets its own (the critical
    route's 10 s group_wait would otherwise stay)."""
    values = {
        "MLMON_ALERT_WEBHOOK_URL": webhook_url,
        # Rendered so that the template is exercised as documented, then removed with the
        # email configurations: there is no SMTP server here.
        "MLMON_ALERT_EMAIL_TO": "mlmon@example.org",
        "MLMON_ALERT_EMAIL_FROM": "alertmanager@example.org",
        "MLMON_SMTP_SMARTHOST": "127.0.0.1:25",
        "MLMON_SMTP_USERNAME": "",
        "MLMON_SLACK_CHANNEL": "",
    }
    shell_format = " ".join(f"${name}" for name in ALERTMANAGER_VARIABLES)
    rendered = subprocess.run(
        [envsubst, shell_format],
        input=ALERTMANAGER_TEMPLATE.read_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), **values},
    ).stdout
    timers = {
        "group_wait": group_wait_s,
        "group_interval": group_interval_s,
        "repeat_interval": repeat_interval_s,
    }
    config = yaml.safe_load(rendered)
    _webhook_only(config, webhook_url)
    _shorten(config["route"], timers, root=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False, width=1000))
    return path


def _webhook_only(config: dict[str, Any], webhook_url: str) -> None:
    """Email and Slack receivers would fail on every notification here (no SMTP server,
    no /run/secrets/slack_api_url) and fill Alertmanager's log with retries, and so would
    mlmon-fallback's webhook (the compose network's sidecar, with a token in
    /run/secrets); routing still names the same receivers, so what reaches the local
    webhook is what production routes."""
    for key in _NOTIFIER_GLOBALS:
        config.get("global", {}).pop(key, None)
    for receiver in config.get("receivers") or []:
        for key in [k for k in receiver if k not in ("name", "webhook_configs")]:
            del receiver[key]
        for webhook in receiver.get("webhook_configs") or []:
            webhook["url"] = webhook_url
            webhook.pop("http_config", None)


def _shorten(route: dict[str, Any], timers: Mapping[str, float | None], *, root: bool) -> None:
    for key, seconds in timers.items():
        if seconds is not None and (root or key in route):
            route[key] = duration(seconds)
    for child in route.get("routes") or []:
        _shorten(child, timers, root=False)
