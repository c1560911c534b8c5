"""The stats service's `/` page: what moved, for someone without Grafana.

Per model and window of the latest evaluation, per feature (and the prediction): the
baseline's and the window's shares over the same bins as overlaid bars in an inline
SVG, and the detection score against its threshold; each window's share of drifted
features coloured by what it means (`verdict_level`). Plain HTML and SVG, no script, no
external resource; it refreshes itself. Above the cards: performance estimated without
labels next to the realised one, the confusion matrix, the worst segments and the
features explaining a flagged drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Literal

from stats_service.checks.results import FeatureDrift, Histogram, WindowResult
from stats_service.offline.report import evaluation_time, label_delay_text
from stats_service.service.page_candidates import render_comparisons
from stats_service.service.runner import Evaluation

VerdictLevel = Literal["ok", "warning", "alert"]
WIDTH, HEIGHT, PAD = 360, 140, 18
REFRESH_S = 15

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px}h2{font-size:17px;margin-top:28px}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px;width:380px}
.card.drift{border-color:#c62828;box-shadow:0 0 0 1px #c62828}
.card h3{font-size:15px;margin:0 0 4px}.meta{font-size:12px;color:#555}
.flag{color:#c62828;font-weight:600}.ok{color:#2e7d32}
.verdict.ok{color:#2e7d32}.verdict.warning{color:#b26a00;font-weight:600}
.verdict.alert{color:#c62828;font-weight:600}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.candidates{border-collapse:collapse;background:#fff;font-size:13px}
.candidates th,.candidates td{border:1px solid #ddd;padding:4px 8px;text-align:left}
"""


def render_page(evaluation: Evaluation | None) -> str:
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        f"<title>mlmon drift</title><style>{STYLE}</style></head><body>"
        "<h1>mlmon: drift against the training baseline</h1>"
    )
    if evaluation is None:
        return head + "<p>Waiting for the first evaluation.</p></body></html>"
    parts = [
        head,
        f'<p class="meta">Evaluated {escape(evaluation_time(evaluation))} in '
        f"{evaluation.duration_s:.2f} s. "
        '<span class="legend"><span style="background:#9e9e9e"></span>baseline'
        '<span style="background:#1e88e5;opacity:.7"></span>window</span></p>',
    ]
    parts += [_window(result) for result in evaluation.results]
    parts.append(render_comparisons(evaluation.comparisons))
    return "".join(parts) + "</body></html>"


def _window(result: WindowResult) -> str:
    title = f"{escape(result.model)}, window {escape(result.window)}: {result.rows:,} rows"
    if result.status != "ok":
        return (
            f"<h2>{title}</h2><p class='meta'>{escape(result.status)}: {escape(result.message)}</p>"
        )
    verdict = ""
    if result.drift_share is not None:
        level = verdict_level(result)
        verdict = (
            f" <span class='verdict {level}' data-level='{level}'>"
            f"{result.drift_share:.0%} of features drifted</span>"
        )
    drifts: Sequence[FeatureDrift] = [
        *result.features,
        *([result.prediction] if result.prediction is not None else []),
    ]
    cards = "".join(_card(drift) for drift in drifts)
    return f"<h2>{title}{verdict}</h2>{_health(result)}<div class='grid'>{cards}</div>"


def _health(result: WindowResult) -> str:
    """Estimated and realised performance side by side, the confusion matrix, the worst
    segments and what explains a drift."""
    parts: list[str] = []
    estimated = result.estimated_performance
    realised = result.performance.metrics if result.performance is not None else {}
    if estimated is not None and estimated.metrics:
        rows = "".join(
            f"<tr data-metric='{escape(m.metric)}'><td>{escape(m.metric)}</td>"
            f"<td>{m.value:.4f}</td><td>{m.lower:.4f} - {m.upper:.4f}</td>"
            f"<td>{_optional(realised.get(m.metric))}</td><td>"
            + ("<span class='flag'>ALERT</span>" if m.alert else "<span class='ok'>ok</span>")
            + "</td></tr>"
            for m in estimated.metrics
        )
        parts.append(
            "<table class='estimated'><caption>estimated without labels "
            f"({escape(estimated.method)}, {estimated.samples:,} rows)</caption>"
            "<tr><th>metric</th><th>estimated</th>"
            f"<th>band</th><th>realised</th><th></th></tr>{rows}</table>"
        )
    elif estimated is not None:
        parts.append(f"<p class='meta'>No estimated performance: {escape(estimated.reason)}</p>")
    if result.label_coverage is not None:
        delay = label_delay_text(result)
        parts.append(
            f"<p class='meta'>Labels: {result.label_coverage.ratio:.1%} of rows"
            + (f"; {escape(delay)}" if delay else "")
            + ".</p>"
        )
    confusion = result.performance.confusion if result.performance is not None else None
    if confusion is not None:
        head = "".join(f"<th>{escape(c)}</th>" for c in confusion.classes)
        body = "".join(
            f"<tr><th>{escape(name)}</th>" + "".join(f"<td>{c:,}</td>" for c in counts) + "</tr>"
            for name, counts in zip(confusion.classes, confusion.counts, strict=True)
        )
        parts.append(
            "<table class='confusion'><caption>confusion (rows: truth, columns: predicted)"
            f"</caption><tr><th></th>{head}</tr>{body}</table>"
        )
    if result.worst_segments:
        items = "".join(
            f"<li>{escape(metric)}: <b>{escape(segment)}</b></li>"
            for metric, segment in result.worst_segments
        )
        parts.append(f"<div class='meta'>Worst segment by<ul>{items}</ul></div>")
    if result.root_cause:
        items = "".join(
            f"<li>{escape(c.feature)}: {_share(c.error_share)} of the excess error; "
            f"{escape(c.method or '-')} {_optional(c.score)}</li>"
            for c in result.root_cause[:5]
        )
        parts.append(f"<div class='meta root-cause'>Drift explained by<ol>{items}</ol></div>")
    return "".join(parts)


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def verdict_level(result: WindowResult) -> VerdictLevel:
    """ok (green): no feature drifted; warning (amber): some did, fewer than
    `drift.dataset_share`; alert (red): dataset drift. Green for "17% drifted" would tell
    a reader to look no further while a feature has moved."""
    if result.dataset_drift:
        return "alert"
    return "warning" if result.drift_share else "ok"


def _card(drift: FeatureDrift) -> str:
    method = drift.method(drift.detection_method)
    score = "-" if method is None or method.score is None else f"{method.score:.3f}"
    threshold = "-" if method is None or method.threshold is None else f"{method.threshold:.3f}"
    flag = "<span class='flag'>DRIFT</span>" if drift.detected else "<span class='ok'>ok</span>"
    css = "card drift" if drift.detected else "card"
    return (
        f"<div class='{css}' data-feature='{escape(drift.feature)}'>"
        f"<h3>{escape(drift.feature)} {flag}</h3>"
        f"<div class='meta'>{escape(drift.detection_method)} {score} against threshold "
        f"{threshold}; {drift.samples:,} values</div>"
        f"{_svg(drift.feature, drift.histogram)}</div>"
    )


def _svg(feature: str, histogram: Histogram) -> str:
    bins = len(histogram.bins)
    top = max([*histogram.baseline, *histogram.window, 1e-9])
    slot = (WIDTH - 2 * PAD) / max(bins, 1)
    bars = []
    for i, label in enumerate(histogram.bins):
        x = PAD + i * slot
        for share, colour, offset, opacity in (
            (histogram.baseline[i], "#9e9e9e", 0.0, 1.0),
            (histogram.window[i], "#1e88e5", 0.25, 0.7),
        ):
            height = (HEIGHT - 2 * PAD) * share / top
            bars.append(
                f"<rect x='{x + slot * offset:.1f}' y='{HEIGHT - PAD - height:.1f}' "
                f"width='{slot * 0.7:.1f}' height='{height:.1f}' fill='{colour}' "
                f"opacity='{opacity}'><title>{escape(label)}: {share:.1%}</title></rect>"
            )
    return (
        f"<svg role='img' aria-label='{escape(feature)} histogram' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' xmlns='http://www.w3.org/2000/svg'>"
        f"<line x1='{PAD}' y1='{HEIGHT - PAD}' x2='{WIDTH - PAD}' y2='{HEIGHT - PAD}' "
        f"stroke='#999'/>{''.join(bars)}"
        f"<text x='{PAD}' y='{HEIGHT - 3}' font-size='10' fill='#555'>"
        f"{escape(histogram.bins[0]) if bins else ''}</text>"
        f"<text x='{WIDTH - PAD}' y='{HEIGHT - 3}' font-size='10' fill='#555' "
        f"text-anchor='end'>{escape(histogram.bins[-1]) if bins else ''}</text></svg>"
    )
