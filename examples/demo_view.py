"""The demo's live summary as text: one block per refresh, from what `demo_probe` read.

A figure that could not be fetched is shown as "unavailable (why)", so the block always
renders whatever state the components are in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from examples.demo_probe import Alert, ServiceFigures

CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase the screen: a redraw in place on a terminal


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float  # since the traffic started
    duration_s: float | None  # of the live phase; None: until interrupted
    drift_plan: str  # "income +1.5 std after 45 s", "none"
    drift_onset_s: float | None  # elapsed seconds at the first drifted request
    window: str
    # None: no previous scrape yet; str: why the sidecar could not be read.
    service: ServiceFigures | str | None
    # None: no evaluation of the window yet; str: why the report could not be read.
    report: Mapping[str, Any] | str | None
    # None: Prometheus is not running; str: why its alerts could not be read.
    alerts: Sequence[Alert] | str | None
    notifications: int  # received by the webhook standing in for people
    fired_at: Mapping[str, float] = field(default_factory=dict)  # alert key -> elapsed s
    urls: Sequence[tuple[str, str]] = field(default_factory=list)


def render(snapshot: Snapshot) -> str:
    width = max((len(label) for label, _ in snapshot.urls), default=0)
    return "\n".join(
        [
            _header(snapshot),
            _service(snapshot.service),
            *_drift(snapshot.window, snapshot.report),
            *_alerts(snapshot.alerts, snapshot.notifications, snapshot.fired_at),
            "open:",
            *(f"  {label:<{width}}  {url}" for label, url in snapshot.urls),
        ]
    )


def _header(s: Snapshot) -> str:
    limit = f" of {s.duration_s:g}" if s.duration_s is not None else ""
    if s.drift_onset_s is not None:
        drift = f"drift injected ({s.drift_plan}) at {s.drift_onset_s:.0f} s"
    else:
        drift = f"drift: {s.drift_plan}"
    return f"mlmon demo: {s.elapsed_s:.0f}{limit} s of traffic; {drift}; Ctrl-C stops"


def _service(service: ServiceFigures | str | None) -> str:
    if service is None:
        return "sidecar: measuring..."
    if isinstance(service, str):
        return f"sidecar: unavailable ({service})"
    errors = f", {service.errors:.0f} errors (5xx)" if service.errors else ""
    return (
        f"sidecar (last {service.seconds:.1f} s): {service.rate:.1f} req/s{errors}, "
        f"latency p50 {_ms(service.p50_s)} p99 {_ms(service.p99_s)}, "
        f"sidecar overhead p50 {_ms(service.overhead_p50_s)} p99 {_ms(service.overhead_p99_s)}"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def _drift(window: str, report: Mapping[str, Any] | str | None) -> list[str]:
    title = f"drift and data quality, window {window}"
    if report is None:
        return [f"{title}: waiting for the first evaluation"]
    if isinstance(report, str):
        return [f"{title}: unavailable ({report})"]
    try:
        return _drift_table(title, report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The report is our own service's, but a display must survive any answer.
        return [f"{title}: unavailable (unexpected report: {exc!r})"]


def _drift_table(title: str, report: Mapping[str, Any]) -> list[str]:
    head = f"{title} ({report['rows']:,} rows up to {report['end']})"
    if report["status"] != "ok":
        return [f"{head}: {report['status']}, {report.get('message', '')}"]
    quality = {q["feature"]: q for q in report.get("quality") or []}
    features = list(report.get("features") or [])
    labelled = [(str(f["feature"]), f) for f in features]
    prediction = report.get("prediction")
    if prediction:
        labelled.append((f"{prediction['feature']} (output)", prediction))
    header = ("feature", "method", "score", "threshold", "missing", "unseen", "out of range", "")
    rows: list[tuple[str, ...]] = [header]
    for label, drift in labelled:
        method = _method(drift)
        q = quality.get(drift["feature"], {})
        # Unseen categories only exist for categorical features, a range only for numeric.
        categorical = drift.get("kind") == "categorical"
        rows.append(
            (
                label,
                str(drift.get("detection_method", "")),
                _number(method.get("score")),
                _number(method.get("threshold")),
                _percent(q.get("missing_ratio")),
                _percent(q.get("unseen_ratio") if categorical else None),
                _percent(None if categorical else q.get("out_of_range_ratio")),
                "<< DRIFT" if drift.get("detected") else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [head]
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    drifted = [f["feature"] for f in features if f.get("detected")]
    share = report.get("drift_share")
    share_text = f" ({share:.0%} of features)" if isinstance(share, int | float) else ""
    lines.append(f"  drifted: {', '.join(drifted) or 'none'}{share_text}")
    return lines


def _method(drift: Mapping[str, Any]) -> Mapping[str, Any]:
    wanted = drift.get("detection_method")
    for method in drift.get("methods", []):
        if method.get("method") == wanted:
            return dict(method)
    return {}


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _alerts(
    alerts: Sequence[Alert] | str | None, notifications: int, fired_at: Mapping[str, float]
) -> list[str]:
    if alerts is None:
        return ["alerts: Prometheus not installed (apt-get install prometheus)"]
    if isinstance(alerts, str):
        return [f"alerts: unavailable ({alerts})"]
    # In the order they fired: Prometheus's own order changes from one answer to the next.
    firing = sorted(
        (a for a in alerts if a.state == "firing"), key=lambda a: (fired_at.get(a.key, 0.0), a.key)
    )
    pending = sorted((a for a in alerts if a.state == "pending"), key=lambda a: a.key)
    told = f"; {notifications} notifications from Alertmanager" if notifications else ""
    lines = [f"alerts (Prometheus): {len(firing)} firing, {len(pending)} pending{told}"]
    lines += [f"  FIRING  {a.key} since +{fired_at.get(a.key, 0.0):.0f} s" for a in firing]
    lines += [f"  pending {a.key}" for a in pending]
    return lines
