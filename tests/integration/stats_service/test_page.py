"""The stats service's `/` page, rendered by a real headless Chromium: a chart per feature."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from tests.support.credit_log import log, rows, write_baseline
from tests.support.processes import require_binary, stats_service
from tests.support.scrape import value, wait_for

# Without the background-networking flags Chromium keeps calling out (refused here).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOT = os.environ.get("MLMON_PAGE_SCREENSHOT")  # docs/stats-page.png, for the README


def chromium(*args: str) -> str:
    binary = require_binary("chromium")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return result.stdout.decode()


def test_page_shows_each_feature_chart_with_the_drifted_one_marked(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    db = tmp_path / "mlmon.db"
    log(db, rows(rng, 500, shift=12.0), now=time.time())  # age drifted, country not
    with stats_service(
        tmp_path,
        baselines={"credit": write_baseline(tmp_path)},
        store=f"sqlite:///{db}",
        config="windows: [last_500]\ninterval_s: 0.5\n",
    ) as url:
        wait_for(url, lambda s: value(s, "mlmon_window_samples") == 500)
        with urllib.request.urlopen(f"{url}/", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/html")
        dom = chromium("--dump-dom", f"{url}/")
        if SCREENSHOT:
            chromium(f"--screenshot={SCREENSHOT}", "--window-size=1280,760", f"{url}/")
    assert "credit, window last_500: 500 rows" in dom
    for feature, drifted in (("age", True), ("country", False), ("prediction", True)):
        start = dom.index(f'data-feature="{feature}"')
        card = dom[start : dom.index("</svg>", start)]
        assert f'aria-label="{feature} histogram"' in card
        assert card.count("<rect") >= 4  # baseline and window bars, several bins
        assert ("DRIFT" in card) == drifted, feature
