"""The `/` page's dataset verdict is coloured by what it means, not always green."""

from __future__ import annotations

import colorsys
import re
from html.parser import HTMLParser

import pytest

from stats_service.checks.results import FeatureDrift, Histogram, MethodResult, WindowResult
from stats_service.service.page import STYLE, render_page
from stats_service.service.runner import Evaluation

FEATURES = ("age", "income", "balance", "score", "plan", "region")


def window(drifted: int, dataset_share: float = 0.5) -> WindowResult:
    """Six features, the first `drifted` of them drifted; the verdict as the runner
    computes it against `drift.dataset_share`."""
    features = tuple(
        FeatureDrift(
            feature=name,
            kind="numeric",
            samples=500,
            methods=(MethodResult("jensenshannon", 0.3 if i < drifted else 0.01, 0.07),),
            detection_method="jensenshannon",
            detected=i < drifted,
            histogram=Histogram(("a", "b"), (0.5, 0.5), (0.5, 0.5)),
        )
        for i, name in enumerate(FEATURES)
    )
    share = drifted / len(features)
    return WindowResult(
        model="credit",
        window="5m",
        start_ts=0.0,
        end_ts=300.0,
        rows=500,
        status="ok",
        features=features,
        drift_share=share,
        dataset_drift=share >= dataset_share,
    )


class _Verdicts(HTMLParser):
    """The text and CSS classes of each `<span class="verdict ...">`."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, set[str]]] = []
        self._open: set[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        if tag == "span" and "verdict" in classes:
            self._open = classes

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.found.append((data, self._open))
            self._open = None


def colour_of(classes: set[str]) -> str:
    """The colour STYLE gives an element with these classes (the most specific rule)."""
    best, colour = -1, ""
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", STYLE):
        wanted = set(selector.strip().lstrip(".").split("."))
        match = re.search(r"(?:^|;)color:(#[0-9a-fA-F]{6})", body)
        if match and wanted <= classes and len(wanted) > best:
            best, colour = len(wanted), match.group(1)
    return colour


def hue(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0] * 360


@pytest.mark.parametrize(
    ("drifted", "text", "hues"),
    [
        (0, "0% of features drifted", (90, 150)),  # green: nothing moved
        (1, "17% of features drifted", (30, 55)),  # amber: a feature moved, no dataset drift
        (3, "50% of features drifted", (-15, 15)),  # red: dataset drift (share 0.5)
    ],
)
def test_dataset_verdict_colour_follows_its_meaning(
    drifted: int, text: str, hues: tuple[float, float]
) -> None:
    html = render_page(Evaluation(started_at=0.0, duration_s=0.1, results=(window(drifted),)))
    parser = _Verdicts()
    parser.feed(html)
    ((shown, classes),) = parser.found
    assert shown == text
    angle = hue(colour_of(classes))
    angle = angle - 360 if angle > 180 else angle  # reds sit on both sides of 0
    assert hues[0] <= angle <= hues[1], (classes, colour_of(classes))


def test_below_the_dataset_share_is_a_warning_above_it_an_alert() -> None:
    html = render_page(
        Evaluation(0.0, 0.1, (window(2, dataset_share=0.5), window(2, dataset_share=0.3)))
    )
    parser = _Verdicts()
    parser.feed(html)
    levels = [classes - {"verdict"} for _, classes in parser.found]
    assert levels == [{"warning"}, {"alert"}]
