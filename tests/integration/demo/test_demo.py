"""`DEMO_SECONDS=90 make demo` from a clean checkout, as a newcomer would run it.

The checkout is a copy of the working tree's tracked and untracked, non-ignored files
(`git ls-files -co --exclude-standard`), not a `git clone` of HEAD: a clone would miss
whatever is not committed yet, so the test would check an older tree than the one under
review; the copy is what a clone of this tree would hold once committed, and like a clone
it has no .venv, caches or input logs. `make` bootstraps its own .venv there (pip, from
the package index and the local wheel cache), so this also checks that a fresh machine
needs nothing but the Makefile. TMPDIR points into the test's directory so that the
demo's work directory, and every process started with a path in it, is recognisable.

Checks: exit code 0; the final `demo: drift detected on:` line names exactly the drifted
feature; a live summary was shown; with Prometheus installed, the drift alert fired and
showed in the output (else the output says it is not installed); every URL the summary
prints, fetched while the demo runs (once Alertmanager has notified, so that the pages
have alerts to show), answers 200 with what its label promises; Alertmanager's log holds
no error (no receiver the demo does not have); and no process whose command line or
working directory is under the checkout is left once make has exited. The time to
bootstrap .venv and the time of the demo itself are printed (run with -s) and recorded as
`user_properties`. Quick checks of the summary's figures, of its resilience to failed
fetches and of the local Alertmanager configuration come first. Ctrl-C:
test_demo_interrupt.py.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples import demo_config
from examples.demo_probe import (
    UnavailableError,
    fetch_report,
    histogram_quantile,
    parse_scrape,
    service_figures,
)
from examples.demo_view import Snapshot, render
from examples.stack_config import ALERTMANAGER_TEMPLATE, render_alertmanager_config
from examples.stack_processes import free_port
from tests.integration.demo.demo_runs import (
    Fetched,
    LinkCheck,
    MakeRun,
    copy_checkout,
    demo_environment,
    json_or_none,
    kill_listed,
    processes_under,
)
from tests.support.processes import require_binary

DEMO_SECONDS = 90
DRIFTED = "income"
# Functional bound only: a cold pip install plus start-up plus the 90 s of traffic.
MAKE_TIMEOUT_S = 900.0
STARTING = "demo: starting the stack"
DRIFT_LINE = re.compile(r"^demo: drift detected on: (.*)$", re.MULTILINE)
ALERTS_LINE = re.compile(r"^demo: alerts fired: (.*)$", re.MULTILINE)
KEPT_LINE = re.compile(r"^demo: work directory: (\S+) \(kept", re.MULTILINE)
# The live summary's alerts line once the webhook has had a notification.
NOTIFIED = re.compile(r"^alerts \(Prometheus\): .*; [1-9]\d* notifications from Alertmanager")
# Debian's Alertmanager page for a build without its web application.
NO_UI_NOTICE = "does not include a web application"


def _metrics(requests: int, fast: int, slow: int) -> str:
    """Sidecar exposition text: `fast` requests of <= 5 ms, `slow` of <= 10 ms."""
    labels = 'model="credit",model_version="1",protocol="v2",code="200"'
    lines = [f"mlmon_requests_total{{{labels}}} {requests}"]
    for name, buckets in (
        ("mlmon_request_duration_seconds", (("0.005", fast), ("0.01", fast + slow))),
        ("mlmon_proxy_overhead_seconds", (("0.0001", fast + slow),)),
    ):
        lines.append(f"# TYPE {name} histogram")
        for le, count in (*buckets, ("+Inf", fast + slow)):
            lines.append(f'{name}_bucket{{model="credit",protocol="v2",le="{le}"}} {count}')
        lines.append(f'{name}_count{{model="credit",protocol="v2"}} {fast + slow}')
        lines.append(f'{name}_sum{{model="credit",protocol="v2"}} 0.1')
    return "\n".join(["# TYPE mlmon_requests_total counter", *lines]) + "\n"


def test_latency_quantiles_come_from_the_histogram_deltas_between_refreshes() -> None:
    before = parse_scrape(_metrics(1000, 900, 100), at=10.0)
    after = parse_scrape(_metrics(1040, 920, 120), at=12.0)  # 20 fast + 20 slow since
    figures = service_figures(before, after)
    assert figures.rate == pytest.approx(20.0)
    assert figures.p50_s == pytest.approx(0.005)
    assert figures.p99_s == pytest.approx(0.005 + 0.005 * (39.6 - 20) / 20)
    assert figures.overhead_p50_s == pytest.approx(0.00005)
    assert service_figures(after, after).p50_s is None  # no request: no quantile
    assert histogram_quantile(0.99, {0.1: 1.0, math.inf: 10.0}) == 0.1


def test_a_summary_with_nothing_reachable_renders_and_says_so() -> None:
    with pytest.raises(UnavailableError):
        fetch_report(f"http://127.0.0.1:{free_port()}", "credit", "30s")
    text = render(
        Snapshot(
            elapsed_s=3.0,
            duration_s=None,
            drift_plan="none",
            drift_onset_s=None,
            window="30s",
            service="connection refused",
            report="timed out",
            alerts=None,
            notifications=0,
            urls=[("stats page", "http://127.0.0.1:1/")],
        )
    )
    assert "sidecar: unavailable (connection refused)" in text
    assert "window 30s: unavailable (timed out)" in text
    assert "Prometheus not installed" in text
    odd = render(Snapshot(3.0, 90.0, "none", None, "30s", None, {"rows": "x"}, "HTTP 500", 0))
    assert "unexpected report" in odd and "alerts: unavailable (HTTP 500)" in odd


def test_environment_settings_are_checked_by_name() -> None:
    config = demo_config.from_env({"DEMO_SECONDS": "90", "DEMO_DRIFT_AFTER": "off"})
    assert config.seconds == 90.0 and config.drift_after_s is None
    assert demo_config.from_env({}).drift_after_s == 45.0
    for name, value in (("DEMO_SECONDS", "soon"), ("DEMO_DRIFT_FEATURE", "employment")):
        with pytest.raises(ValueError, match=name):
            demo_config.from_env({name: value})


def test_the_local_alertmanager_notifies_only_the_webhook_the_stack_runs(tmp_path: Path) -> None:
    """The shipped template's routes and receiver names, without the email and Slack
    senders that could only fail here (and log every retry)."""
    webhook = f"http://127.0.0.1:{free_port()}/alerts"
    path = render_alertmanager_config(
        tmp_path / "alertmanager.yml",
        envsubst=require_binary("envsubst"),
        webhook_url=webhook,
        group_wait_s=1.0,
        group_interval_s=2.0,
        repeat_interval_s=None,
    )
    config = yaml.safe_load(path.read_text())
    shipped = yaml.safe_load(ALERTMANAGER_TEMPLATE.read_text())
    assert [r["name"] for r in config["receivers"]] == [r["name"] for r in shipped["receivers"]]
    for receiver in config["receivers"]:
        assert set(receiver) == {"name", "webhook_configs"}, receiver
        assert [hook["url"] for hook in receiver["webhook_configs"]] == [webhook]
    text = path.read_text()
    for absent in ("slack", "smtp", "email", "/run/secrets"):
        assert absent not in text
    assert config["inhibit_rules"] == shipped["inhibit_rules"]
    output = subprocess.run(
        [require_binary("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert output.returncode == 0, output.stdout + output.stderr


def meaningful(page: Fetched) -> str | None:
    """Why the page is not what its label promises, or None when it is."""
    label, url, body = page.label, page.url, page.body
    document = json_or_none(body)
    if label == "stats page":
        ok = "<title>mlmon drift</title>" in body and DRIFTED in body
    elif label == "sidecar metrics":
        ok = re.search(r"^mlmon_requests_total\{.*model=\"credit\"", body, re.MULTILINE) is not None
    elif label == "stats report (JSON)":
        ok = isinstance(document, dict) and bool(document.get("results"))
    elif label.startswith("Prometheus alerts"):
        if url.endswith("/api/v1/alerts"):
            ok = isinstance(document, dict) and document.get("status") == "success"
        elif url.endswith("/classic/alerts"):  # server-rendered: every alerting rule listed
            ok = "MlmonFeatureDrift" in body and "MlmonTrafficSurge" in body
        else:  # the React UI renders in the browser: its shell is what a GET returns
            ok = "<title>Prometheus" in body
    elif label.startswith("Alertmanager"):
        if "/api/v2/alerts" in url:
            ok = isinstance(document, list) and bool(document)
            ok = ok and all(a["labels"]["alertname"].startswith("Mlmon") for a in document)
            ok = ok and "API" in label  # the summary says it is not a web page
        else:
            ok = "<title>Alertmanager</title>" in body and NO_UI_NOTICE not in body
    else:
        return f"no check for {label!r}: say in this test what it should show"
    return None if ok else f"unexpected content: {body[:300]!r}"


@pytest.mark.slow
@pytest.mark.timeout(MAKE_TIMEOUT_S + 120)
def test_make_demo_from_a_clean_checkout(tmp_path: Path, record_property: Any) -> None:
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    checkout, tmp_dir = tmp_path / "checkout", tmp_path / "tmp"
    tmp_dir.mkdir()
    copied = copy_checkout(checkout)
    assert (checkout / "Makefile").is_file() and not (checkout / ".venv").exists()

    with_prometheus = shutil.which("prometheus") is not None
    with_alertmanager = with_prometheus and shutil.which("prometheus-alertmanager") is not None

    def ready(line: str) -> bool:
        # Without Alertmanager nothing notifies: the first block's URLs are fetched.
        return not with_alertmanager or NOTIFIED.match(line) is not None

    links = LinkCheck(ready)
    # DEMO_KEEP: the logs are read after the run (removal at exit: test_demo_interrupt.py).
    env = demo_environment(tmp_dir, DEMO_SECONDS=str(DEMO_SECONDS), DEMO_KEEP="1")
    run = MakeRun(checkout, env, MAKE_TIMEOUT_S, on_line=links.feed)
    code = run.wait()
    links.finish()
    total = time.monotonic() - run.started
    left = processes_under(tmp_path)
    kill_listed(left)  # so that they cannot outlive the test; reported below

    output = run.output
    bootstrap = run.first(STARTING)
    record_property("files_copied", copied)
    record_property("total_s", round(total, 1))
    if bootstrap is not None:
        record_property("bootstrap_s", round(bootstrap, 1))
        record_property("demo_s", round(total - bootstrap, 1))
    print(
        f"\nmake demo from a clean checkout ({copied} files): {total:.0f} s in all, of which "
        f"bootstrapping .venv {math.nan if bootstrap is None else bootstrap:.0f} s\n"
        + "\n".join(line for line in output.splitlines() if line.startswith("demo: "))
        + "\nURLs printed: "
        + ", ".join(f"{page.label} {page.url} -> {page.status}" for page in links.fetched)
    )
    tail = "\n".join(output.splitlines()[-80:])
    assert not run.timed_out, f"make demo did not finish within {MAKE_TIMEOUT_S:g} s\n{tail}"
    assert code == 0, f"make demo exited with {code}\n{tail}"
    assert left == [], f"left behind: {left}"

    verdicts = DRIFT_LINE.findall(output)
    assert verdicts == [DRIFTED], tail
    assert re.search(r"^sidecar \(last .*\): [\d.]+ req/s", output, re.MULTILINE), tail

    assert links.fetched, f"no URL block was fetched\n{tail}"
    labels = [page.label for page in links.fetched]
    assert {"stats page", "sidecar metrics", "stats report (JSON)"} <= set(labels)
    problems = {
        f"{page.label} {page.url}": page.status if page.status != 200 else meaningful(page)
        for page in links.fetched
    }
    assert {url: why for url, why in problems.items() if why is not None} == {}

    (work_dir,) = KEPT_LINE.findall(output)
    alertmanager_log = Path(work_dir) / "logs" / "alertmanager.log"
    if with_alertmanager:
        assert any(label.startswith("Alertmanager") for label in labels), labels
        errors = [
            line
            for line in alertmanager_log.read_text().splitlines()
            if "level=error" in line or "no such file" in line
        ]
        assert errors == [], "\n".join(errors[:20])

    if with_prometheus:
        assert any(label.startswith("Prometheus alerts") for label in labels), labels
        (fired,) = ALERTS_LINE.findall(output)
        assert f"MlmonFeatureDrift(feature={DRIFTED}," in fired, tail
        other = re.findall(r"MlmonFeatureDrift\(feature=(\w+)", fired)
        assert set(other) == {DRIFTED}, tail
        assert re.search(rf"^  FIRING  MlmonFeatureDrift\(feature={DRIFTED},", output, re.MULTILINE)
    else:
        assert os.environ.get("CI") != "true", "prometheus is required in CI (make test)"
        assert "Prometheus not installed" in output, tail
