"""`DEMO_SHADOW=1 make demo`: what the demo says about its candidate model.

With `StackOptions(candidate=True)` the sidecar sends a copy of every request to a second
model server (`model_server --candidate`, a different model) as shadow CANDIDATE_NAME, and
can move the traffic to a naive fallback served from the baseline. At start-up the demo
says where the comparison shows (`where_to_look`); at the end, one line per candidate
from the stats service's latest comparison over the shortest window (`verdict`), the line
`demo: shadow CANDIDATE: agreement ...` being for scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from examples.demo_probe import UnavailableError, fetch_json
from examples.stack import StackUrls
from examples.stack_components import CANDIDATE_NAME


def where_to_look(urls: StackUrls, model: str) -> list[str]:
    lines = [
        f"shadow {CANDIDATE_NAME} at {urls.candidate} gets a copy of every request; "
        "clients only ever get the primary's answer",
        f"comparison: {urls.stats}/ (Candidates against the primary), "
        f'{urls.stats}/api/v1/report ("comparisons"), Grafana dashboard mlmon / Releases',
    ]
    if urls.prometheus is not None:
        lines.append(
            f"agreement in Prometheus: {urls.prometheus}/graph?g0.expr="
            "mlmon_shadow_agreement_total&g0.tab=1"
        )
    if urls.admin is not None:
        body = '{"route": "fallback"}'
        lines.append(
            f'to move traffic to the naive fallback: curl -X POST -H "Authorization: Bearer '
            f"$(cat {urls.admin_token_file})\" -d '{body}' {urls.admin}/routes/{model}"
        )
    return lines


def verdict(stats_url: str, window: str) -> list[str]:
    """One line per candidate compared over `window` in the latest evaluation."""
    try:
        document = fetch_json(f"{stats_url}/api/v1/report")
        comparisons = [c for c in document.get("comparisons", []) if c["window"] == window]
    except (UnavailableError, AttributeError, KeyError, TypeError) as exc:
        return [f"shadow: comparison unavailable ({exc})"]
    if not comparisons:
        return [f"shadow {CANDIDATE_NAME}: not compared yet over window {window}"]
    return [_line(comparison) for comparison in comparisons]


def _line(comparison: Mapping[str, Any]) -> str:
    name = f"{comparison['role']} {comparison['candidate']}"
    if comparison["status"] != "ok":
        return f"{name}: {comparison['message']}"
    agreement = comparison["agreement"]
    agreed = "-" if agreement is None else f"{agreement:.1%}"
    distance = {m["method"]: m["score"] for m in comparison["distance"]}.get("jensenshannon")
    parts = [
        f"agreement {agreed} of {comparison['agreement_samples']:,} answers",
        "prediction distance (Jensen-Shannon) " + ("-" if distance is None else f"{distance:.3f}"),
    ]
    for role, key in (("primary", "primary_performance"), ("candidate", "candidate_performance")):
        performance = comparison[key]
        if performance and "accuracy" in performance["metrics"]:
            parts.append(f"{role} accuracy {performance['metrics']['accuracy']:.3f}")
    return f"{name}: " + ", ".join(parts)
