"""A small real stack for the fallback loop, on 127.0.0.1: a primary that can be made to
fail, a fallback model, the sidecar with its admin listener, Prometheus scraping it with a
rule file of the caller's, and Alertmanager whose webhook is the sidecar's admin listener.

Used by tests/integration/stack/test_release_fallback.py and benchmarks/release_overhead.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.model_servers import ModelServer
from tests.support.processes import Sidecar, free_port, require_binary, running, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.releases import TOKEN, admin, infer, token_file

MODEL = "iris"
ERROR_RULE = """
groups:
  - name: release-test
    interval: 1s
    rules:
      - alert: MlmonHighErrorRate
        expr: sum by (model) (rate(mlmon_requests_total{route="primary", code=~"5.."}[4s])) > 0
        for: 1s
        labels: {severity: critical, category: service}
"""


@dataclass(frozen=True)
class Timing:
    """Alertmanager's route timers, in seconds."""

    group_wait: float = 1.0
    group_interval: float = 1.0
    resolve_timeout: float = 5.0


class FlakyPrimary:
    """The primary model: a real v2 model server behind a switch that makes it answer 500."""

    def __init__(self, model: ModelServer) -> None:
        self.failing = threading.Event()
        self._model = model
        self.upstream = RawUpstream(self._respond)

    def _respond(self, request: RawRequest) -> bytes:
        if self.failing.is_set():
            body = b'{"error": "scripted failure"}'
            return b"HTTP/1.1 500 X\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        answer = infer_raw(self._model.url, request)
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer


def infer_raw(url: str, request: RawRequest) -> bytes:
    forwarded = urllib.request.Request(f"{url}{request.url}", data=request.body, method="POST")
    with urllib.request.urlopen(forwarded, timeout=10) as response:
        return bytes(response.read())


@dataclass
class ReleaseStack:
    sidecar: Sidecar
    admin_url: str
    prometheus_url: str
    alertmanager_url: str
    primary: FlakyPrimary

    def routes(self) -> dict[str, Any]:
        answer = admin(self.admin_url, "GET", "/routes")
        document: dict[str, Any] = answer.json()
        return document

    def alert_state(self, name: str = "MlmonHighErrorRate") -> str:
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/alerts", timeout=5) as r:
            alerts = json.load(r)["data"]["alerts"]
        states = [a["state"] for a in alerts if a["labels"].get("alertname") == name]
        return states[0] if states else "inactive"


def alertmanager_config(admin_port: int, token: Path, timing: Timing) -> dict[str, Any]:
    receiver = {
        "name": "mlmon-fallback",
        "webhook_configs": [
            {
                "url": f"http://127.0.0.1:{admin_port}/alertmanager",
                "send_resolved": True,
                "http_config": {
                    "authorization": {"type": "Bearer", "credentials_file": str(token)}
                },
            }
        ],
    }
    return {
        "global": {"resolve_timeout": f"{timing.resolve_timeout:g}s"},
        "route": {
            "receiver": "mlmon-fallback",
            "group_by": ["alertname", "model"],
            "group_wait": f"{timing.group_wait:g}s",
            "group_interval": f"{timing.group_interval:g}s",
            "repeat_interval": "1h",
        },
        "receivers": [receiver],
    }


def shipped_fallback_timing(template: Path) -> Timing:
    """The timers of the fallback route in the shipped Alertmanager template."""
    config = yaml.safe_load(template.read_text())
    [route] = [r for r in config["route"]["routes"] if r.get("receiver") == "mlmon-fallback"]

    def seconds(text: str) -> float:
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for unit in ("ms", "s", "m", "h"):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * units[unit]
        raise ValueError(text)

    return Timing(
        group_wait=seconds(route.get("group_wait", config["route"]["group_wait"])),
        group_interval=seconds(route.get("group_interval", config["route"]["group_interval"])),
        resolve_timeout=seconds(config["global"].get("resolve_timeout", "5m")),
    )


@contextmanager
def release_stack(
    tmp_path: Path, timing: Timing, rules: str = ERROR_RULE
) -> Iterator[ReleaseStack]:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    admin_port, sidecar_port = free_port(), free_port()
    prometheus_port, alertmanager_port = free_port(), free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    token = token_file(tmp_path, TOKEN)
    with ExitStack() as stack:
        model = stack.enter_context(ModelServer("v2", model=MODEL, version="1"))
        old = stack.enter_context(ModelServer("v2", model=MODEL, version="0"))
        primary = FlakyPrimary(model)
        stack.enter_context(primary.upstream)
        args = ["--fallback", old.url, "--admin-port", str(admin_port),
                "--admin-token-file", str(token)]  # fmt: skip
        proxy = stack.enter_context(
            sidecar(primary.upstream.url, tmp_path, args=args, port=sidecar_port)
        )

        am_dir = tmp_path / "alertmanager"
        am_dir.mkdir()
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(alertmanager_config(admin_port, token, timing)))
        am_url = f"http://127.0.0.1:{alertmanager_port}"
        stack.enter_context(
            running(
                [alertmanager, f"--config.file={am_config}", f"--storage.path={am_dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                 "--cluster.listen-address="],
                ready_url=f"{am_url}/-/ready",
                log=am_dir / "alertmanager.log",
            )
        )  # fmt: skip

        prom_dir = tmp_path / "prometheus"
        prom_dir.mkdir()
        (prom_dir / "rules.yml").write_text(rules)
        am_target = f"127.0.0.1:{alertmanager_port}"
        prom_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(prom_dir / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_target]}]}]},
            "scrape_configs": [
                {"job_name": "mlmon-exporter",
                 "static_configs": [{"targets": [f"127.0.0.1:{sidecar_port}"]}]}
            ],
        }  # fmt: skip
        (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        prom_url = f"http://127.0.0.1:{prometheus_port}"
        stack.enter_context(
            running(
                [prometheus, f"--config.file={prom_dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={prom_dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                ready_url=f"{prom_url}/-/ready",
                timeout=30,
                log=prom_dir / "prometheus.log",
            )
        )  # fmt: skip
        yield ReleaseStack(proxy, f"http://127.0.0.1:{admin_port}", prom_url, am_url, primary)


class Traffic:
    """Requests to the sidecar at a steady pace in a thread; the versions that answered."""

    def __init__(self, url: str, interval_s: float = 0.05) -> None:
        self._url = url
        self._interval = interval_s
        self._stop = threading.Event()
        self.answers: list[tuple[float, int, str]] = []  # (time, status, model_version)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            answer = infer(self._url, [[0.5, 1.0]], f"traffic-{n}")
            version = answer.json().get("model_version", "") if answer.status == 200 else ""
            self.answers.append((time.time(), answer.status, version))
            self._stop.wait(self._interval)


def wait(condition: Any, timeout: float, interval: float = 0.05) -> float:
    """Wait until condition() holds; the time.time() when it did. TimeoutError if never."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout} s")
