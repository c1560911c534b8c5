"""Read a live /metrics endpoint the way Prometheus would."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import require_binary

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def wait_for(url: str, check: Callable[[Samples], bool], timeout: float = 30) -> Samples:
    """Scrape until `check` holds: the worker updates metrics after the response."""
    deadline = time.monotonic() + timeout
    samples = scrape(url)
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(url)
    return samples


def analysed(samples: Samples, name: str, expected: float, **labels: str) -> bool:
    """`name` has reached `expected` and the analysis is idle: the hand-over queue depth
    falls only after a whole batch's metrics and records are written, so the other
    metrics of that batch are complete too."""
    return (
        value(samples, name, **labels) == expected and value(samples, "mlmon_log_queue_depth") == 0
    )


def assert_promtool_accepts(exposition: bytes, *, lint_clean: bool = True) -> None:
    """`promtool check metrics` passes the exposition: no error and, unless told
    otherwise, no lint warning either (what a Prometheus scrape would later complain of)."""
    checked = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
        check=False,
    )
    said = checked.stdout.decode() + checked.stderr.decode()
    assert checked.returncode == 0, said
    if lint_clean:
        assert checked.stdout.decode().strip() == "", said
