"""Performance without labels, end to end: `mlmon-stats baseline` keeps labelled
reference rows from `proba_<class>` columns, `mlmon-stats report --json` estimates a
window's performance (key `estimated_performance`), splits it by a `segment: true`
feature and names the worst segment; /metrics carries the estimates with their band,
label coverage and per-segment series bounded by K, and passes `promtool check metrics`."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stats_service.baseline.contents import Baseline
from stats_service.baseline.files import load_baseline
from stats_service.offline.data_window import summarize_file
from stats_service.service.collector import StatsCollector
from stats_service.service.runner import Runner, prepare_model
from stats_service.settings import WindowSpec, load
from stats_service.windows.segments import SEGMENT_TOP_K
from stats_service.windows.summary import WindowSummary
from tests.support.processes import VENV_BIN
from tests.support.scrape import assert_promtool_accepts

SCHEMA = """
model: churn
features:
  - {name: x, type: numeric}
  - {name: channel, type: categorical, segment: true}
prediction: {task: binary, classes: ["0", "1"]}
"""
CHANNELS = [f"ch{i:02d}" for i in range(30)]  # more than K: the rest is pooled
# ch00 is the largest segment (so among the K kept), then equal shares.
SHARES = [0.13] + [0.87 / 29] * 29


def write(path: Path, n: int, seed: int, spread: float, bad_channel: str | None = None) -> None:
    """Scores from x, labels drawn from them (calibrated). A smaller `spread` makes the
    model less sure, so less accurate; `bad_channel`'s rows are near coin flips."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["x", "channel", "proba_1", "prediction", "label"])
        for _ in range(n):
            channel = str(rng.choice(CHANNELS, p=SHARES))
            x = rng.normal(0, spread if channel != bad_channel else 0.05)
            p = float(np.round(1 / (1 + np.exp(-4 * x)), 3))
            writer.writerow([round(x, 4), channel, p, int(p >= 0.5), int(rng.random() < p)])


def mlmon_stats(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "mlmon-stats"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("estimation")
    (root / "schema.yaml").write_text(SCHEMA)
    write(root / "train.csv", 20_000, 1, spread=1.0)
    write(root / "live.csv", 6000, 2, spread=0.4, bad_channel="ch00")
    built = mlmon_stats(
        "baseline", "--schema", root / "schema.yaml", "--data", root / "train.csv",
        "--out", root / "baseline.json", "--prediction-column", "prediction",
        "--label-column", "label",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return {"root": root, "baseline": root / "baseline.json", "live": root / "live.csv"}


def test_report_json_estimates_performance_and_names_the_worst_segment(
    files: dict[str, Path],
) -> None:
    report = mlmon_stats(
        "report", "--baseline", files["baseline"], "--data", files["live"], "--json",
        "--prediction-column", "prediction", "--label-column", "label",
    )  # fmt: skip
    assert report.returncode in (0, 1), report.stderr
    result: dict[str, Any] = json.loads(report.stdout)
    estimated = result["estimated_performance"]
    assert estimated["method"] == "cbpe" and estimated["reason"] == ""
    metrics = {m["metric"]: m for m in estimated["metrics"]}
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    realised = result["performance"]["metrics"]
    for name in ("accuracy", "roc_auc"):
        assert metrics[name]["value"] == pytest.approx(realised[name], abs=0.03)
    # Less confident traffic is less accurate, beyond the reference's sampling error.
    accuracy = metrics["accuracy"]
    assert accuracy["alert"] and accuracy["value"] < accuracy["lower"]
    assert np.sum(result["performance"]["confusion"]["counts"]) == 6000
    segments = result["segments"]
    assert {s["feature"] for s in segments} == {"channel"}
    assert len(segments) == SEGMENT_TOP_K + 1 and segments[-1]["segment"] == "__other__"
    assert dict(result["worst_segments"])["estimated_accuracy"] == "channel=ch00"
    assert result["label_coverage"]["ratio"] == 1.0

    table = mlmon_stats(
        "report", "--baseline", files["baseline"], "--data", files["live"],
        "--prediction-column", "prediction", "--label-column", "label",
    )  # fmt: skip
    assert "estimated (cbpe) on 6,000 rows: accuracy" in table.stdout
    assert "worst segment by" in table.stdout and "channel=ch00" in table.stdout


class FileReader:
    """A WindowReader over a data file: the offline twin of a store window."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, model: str, spec: WindowSpec, baseline: Baseline, now: float) -> WindowSummary:
        summary = summarize_file(
            baseline, self.path, prediction_column="prediction", label_column="label", model=model
        )
        return dataclasses.replace(summary, window=spec.name)

    def close(self) -> None:
        return None


def test_metrics_carry_estimates_with_bands_and_bounded_segments(files: dict[str, Path]) -> None:
    baseline = load_baseline(files["baseline"])
    settings = load(
        None,
        overrides={"baselines": f"churn={files['baseline']}", "windows": "1h"},
        environ={"MLMON_ESTIMATION__THRESHOLDS": "accuracy=0.9"},
    )
    context = prepare_model("churn", baseline, str(files["baseline"]), settings)
    runner = Runner({"churn": context}, settings.window_specs, FileReader(files["live"]))
    runner.evaluate_once()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(runner, {"churn": context}))
    exposition = generate_latest(registry)
    text = exposition.decode()
    labels = 'metric="accuracy",model="churn",window="1h"'
    for family in ("", "_lower", "_upper", "_alert", "_threshold"):
        assert f"mlmon_estimated_performance{family}{{{labels}}}" in text, family
    assert 'mlmon_label_coverage_ratio{model="churn",window="1h"} 1.0' in text
    segments = {
        line.split('segment="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("mlmon_segment_rows{")
    }
    assert len(segments) == SEGMENT_TOP_K + 1 and "__other__" in segments
    assert_promtool_accepts(exposition, lint_clean=False)
