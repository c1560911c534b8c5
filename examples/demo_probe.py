"""What the demo's live summary reads: the sidecar's /metrics, the stats service's report
and Prometheus's alerts. Every call has a short timeout and turns any failure into
`None` plus a reason, so a component that is slow or gone shows as "unavailable".

Latency figures come from histogram deltas between two scrapes of the sidecar (what
happened during the last refresh, not since start-up), with the interpolation
Prometheus's `histogram_quantile` uses.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_S = 1.5
REQUESTS = "mlmon_requests_total"
DURATION = "mlmon_request_duration_seconds"
OVERHEAD = "mlmon_proxy_overhead_seconds"


class UnavailableError(Exception):
    """A fetch failed; the message says why, in a few words."""


def fetch_text(url: str, timeout_s: float = TIMEOUT_S) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
    except Exception as exc:  # any failure of a display fetch is shown, never raised
        raise UnavailableError(_reason(exc)) from None
    return body.decode("utf-8", errors="replace")


def fetch_json(url: str, timeout_s: float = TIMEOUT_S) -> Any:
    text = fetch_text(url, timeout_s)
    try:
        return json.loads(text)
    except ValueError:
        raise UnavailableError("not JSON") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class Scrape:
    """The sidecar's cumulative figures at one moment, summed over every label set."""

    at: float  # monotonic seconds
    requests: float
    errors: float  # 5xx answers
    duration_buckets: Mapping[float, float]  # le -> cumulative count
    overhead_buckets: Mapping[float, float]


def parse_scrape(text: str, at: float) -> Scrape:
    requests = errors = 0.0
    buckets: dict[str, dict[float, float]] = {DURATION: {}, OVERHEAD: {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == REQUESTS:
                requests += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors += sample.value
            elif sample.name.endswith("_bucket") and sample.name[: -len("_bucket")] in buckets:
                le = float(sample.labels["le"])
                target = buckets[sample.name[: -len("_bucket")]]
                target[le] = target.get(le, 0.0) + sample.value
    return Scrape(at, requests, errors, buckets[DURATION], buckets[OVERHEAD])


def scrape_sidecar(metrics_url: str, at: float) -> Scrape:
    text = fetch_text(metrics_url)
    try:
        return parse_scrape(text, at)
    except (ValueError, KeyError) as exc:
        raise UnavailableError(f"unreadable metrics ({exc})") from None


@dataclass(frozen=True)
class ServiceFigures:
    """Between two scrapes; quantiles are None when no request finished in between."""

    seconds: float
    requests: float
    errors: float
    p50_s: float | None
    p99_s: float | None
    overhead_p50_s: float | None
    overhead_p99_s: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def service_figures(before: Scrape, after: Scrape) -> ServiceFigures:
    duration = _delta(before.duration_buckets, after.duration_buckets)
    overhead = _delta(before.overhead_buckets, after.overhead_buckets)
    return ServiceFigures(
        seconds=after.at - before.at,
        # A restarted sidecar starts its counters again: never show a negative rate.
        requests=max(0.0, after.requests - before.requests),
        errors=max(0.0, after.errors - before.errors),
        p50_s=histogram_quantile(0.5, duration),
        p99_s=histogram_quantile(0.99, duration),
        overhead_p50_s=histogram_quantile(0.5, overhead),
        overhead_p99_s=histogram_quantile(0.99, overhead),
    )


def _delta(before: Mapping[float, float], after: Mapping[float, float]) -> dict[float, float]:
    return {le: max(0.0, count - before.get(le, 0.0)) for le, count in after.items()}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """As Prometheus computes it: linear within the bucket holding the rank; the highest
    finite bound when the rank falls in the +Inf bucket."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def fetch_report(stats_url: str, model: str, window: str) -> dict[str, Any] | None:
    """The latest result of `model` over `window` (result_to_dict), None before the first."""
    query = urllib.parse.urlencode({"model": model, "window": window})
    document = fetch_json(f"{stats_url}/api/v1/report?{query}")
    try:
        results = document["results"]
    except (TypeError, KeyError):
        raise UnavailableError("unexpected report") from None
    return dict(results[0]) if results else None


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # firing | pending
    labels: Mapping[str, str]

    @property
    def key(self) -> str:
        """The name and the labels that tell two alerts of a rule apart."""
        detail = ",".join(
            f"{k}={self.labels[k]}" for k in ("feature", "window", "method") if k in self.labels
        )
        return f"{self.name}({detail})" if detail else self.name


def fetch_alerts(prometheus_url: str) -> list[Alert]:
    document = fetch_json(f"{prometheus_url}/api/v1/alerts")
    try:
        items = document["data"]["alerts"]
        return [
            Alert(
                name=str(item["labels"].get("alertname", "")),
                state=str(item.get("state", "")),
                labels={str(k): str(v) for k, v in item["labels"].items()},
            )
            for item in items
        ]
    except (TypeError, KeyError, AttributeError):
        raise UnavailableError("unexpected alerts answer") from None


def answers(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """GET `url` answers 2xx (after redirects)."""
    try:
        fetch_text(url, timeout_s)
    except UnavailableError:
        return False
    return True


def prometheus_link(prometheus_url: str) -> tuple[str, str]:
    """(label, URL) of the alerts page this Prometheus serves: `/alerts` in upstream
    builds (the React UI), `/classic/alerts` in builds without it (Debian's 2.42, where
    `/alerts` is a 404), else the API."""
    for path in ("/alerts", "/classic/alerts"):
        if answers(prometheus_url + path):
            return ("Prometheus alerts", prometheus_url + path)
    return ("Prometheus alerts (API: no web UI in this build)", f"{prometheus_url}/api/v1/alerts")


def alertmanager_link(alertmanager_url: str) -> tuple[str, str]:
    """(label, URL) for Alertmanager: its UI where the build has one, else its API. `/`
    answers 200 either way (Debian's build serves a notice that it has no web
    application), so the UI's own script is what tells them apart."""
    if answers(f"{alertmanager_url}/script.js"):
        return ("Alertmanager", f"{alertmanager_url}/#/alerts")
    return (
        "Alertmanager alerts (API: no web UI in this build)",
        f"{alertmanager_url}/api/v2/alerts",
    )


def detected_features(report: Mapping[str, Any] | None) -> list[str]:
    """Input features the report marks as drifted (the prediction is not an input)."""
    if report is None or report.get("status") != "ok":
        return []
    return sorted(str(f["feature"]) for f in report.get("features", []) if f.get("detected"))
