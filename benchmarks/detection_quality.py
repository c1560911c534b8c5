"""Drift detection quality: false alarms on stationary windows, detection of injected shifts.

    .venv/bin/python benchmarks/detection_quality.py
    .venv/bin/python benchmarks/detection_quality.py --sizes 100,1000,10000,100000 --quick

A baseline is built from 200,000 synthetic training rows through the real baseline
builder; windows are drawn afresh from the same generator (stationary) or with one change
injected, summarised like a SQLite window (`summarize_numeric`, `summarize_categorical`)
and scored by `evaluate_features` with the calibrated thresholds, exactly as the stats
service does. A feature "alarms" when `detected` is true (its detection method's score
above max(floor, calibrated quantile)). The multivariate (PCA reconstruction) check is
fitted and calibrated by `fit_pca` as the service's start-up does, and scored on the
stationary windows' rows (at most ROW_SAMPLE_CAP of them, the service's row sample).
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.schema import parse_schema  # noqa: E402
from stats_service.baseline.build import build_baseline  # noqa: E402
from stats_service.baseline.contents import Baseline, NumericFeatureBaseline  # noqa: E402
from stats_service.checks.drift.calibration import Calibration, calibrate  # noqa: E402
from stats_service.checks.drift.features import evaluate_features  # noqa: E402
from stats_service.checks.drift.settings import EFFECT_SIZE_METHODS, DriftSettings  # noqa: E402
from stats_service.checks.multivariate import PcaModel, fit_pca  # noqa: E402
from stats_service.checks.results import FeatureDrift  # noqa: E402
from stats_service.windows.spec import ROW_SAMPLE_CAP  # noqa: E402
from stats_service.windows.summary import (  # noqa: E402
    ColumnSummary,
    WindowSummary,
    summarize_categorical,
    summarize_numeric,
)

TRAINING_ROWS = 200_000
PLANS = ("basic", "plus", "pro", "team", "student")
PLAN_SHARES = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
MISSING_RATE = 0.05
NUMERIC = ("age", "income", "balance", "score")
FEATURES = (*NUMERIC, "plan")
MULTIVARIATE = "multivariate (PCA)"
# (change, feature changed, note): each is injected alone into fresh windows.
CHANGES = (
    ("mean+0.1std", "age", "must stay quiet"),
    ("mean+0.5std", "age", ""),
    ("scale x1.5", "balance", ""),
    ("category +10 points", "plan", "basic 40% -> 50%"),
    ("new category 5%", "plan", ""),
    ("missing +10 points", "score", "5% -> 15%"),
)
Columns = dict[str, Any]  # numeric: float array (NaN = missing); plan: list[str | None]


def draw(rng: np.random.Generator, n: int, change: str = "none") -> Columns:
    """n rows of the generator, with one change applied to one feature."""
    age = rng.normal(40.0, 12.0, n)
    income = rng.lognormal(10.0, 0.5, n)
    balance = rng.normal(1000.0, 300.0, n)
    score = rng.normal(0.0, 1.0, n)
    plan_shares = PLAN_SHARES
    plans: tuple[str, ...] = PLANS
    missing_rate = MISSING_RATE
    if change == "mean+0.1std":
        age += 0.1 * 12.0
    elif change == "mean+0.5std":
        age += 0.5 * 12.0
    elif change == "scale x1.5":
        balance = 1000.0 + 1.5 * (balance - 1000.0)
    elif change == "category +10 points":
        # The largest category, the hardest to notice: 40% -> 50%, the rest shrink.
        plan_shares = np.append(0.5, PLAN_SHARES[1:] * 0.5 / PLAN_SHARES[1:].sum())
    elif change == "new category 5%":
        plan_shares = np.append(PLAN_SHARES * 0.95, 0.05)
        plans = (*PLANS, "enterprise")
    elif change == "missing +10 points":
        missing_rate = MISSING_RATE + 0.10
    score[rng.random(n) < missing_rate] = np.nan
    picks = rng.choice(len(plans), size=n, p=plan_shares)
    return {
        "age": age,
        "income": income,
        "balance": balance,
        "score": score,
        "plan": np.array(plans, dtype=object)[picks].tolist(),
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    feature: str  # the feature changed, the only one scored; "*": none changed, all scored
    windows: dict[int, int]  # size -> windows drawn


def build(tmp: Path) -> Baseline:
    schema = parse_schema(
        {
            "model": "bench",
            "features": [
                {"name": "age", "type": "numeric"},
                {"name": "income", "type": "numeric"},
                {"name": "balance", "type": "numeric"},
                {"name": "score", "type": "numeric", "nullable": True},
                {"name": "plan", "type": "categorical"},
            ],
        },
        "schema.yaml",
    )
    columns = draw(np.random.default_rng(2024), TRAINING_ROWS)
    texts = [np.char.mod("%.6f", columns[name]).astype(object) for name in NUMERIC]
    texts[NUMERIC.index("score")][np.isnan(columns["score"])] = ""
    path = tmp / "train.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write(",".join(FEATURES) + "\n")
        rows = zip(*texts, columns["plan"], strict=True)
        out.write("\n".join(",".join(row) for row in rows) + "\n")
    return build_baseline(schema, path)


def summarise(baseline: Baseline, columns: Columns, n: int, seed: int) -> WindowSummary:
    summaries: dict[str, ColumnSummary] = {}
    for feature in baseline.features:
        if isinstance(feature, NumericFeatureBaseline):
            summaries[feature.name] = summarize_numeric(columns[feature.name], feature, seed=seed)
        else:
            summaries[feature.name] = summarize_categorical(columns[feature.name])
    rows = row_sample(baseline, columns)
    return WindowSummary("bench", f"{n}", 0.0, 0.0, n, summaries, row_sample=rows)


def row_sample(baseline: Baseline, columns: Columns) -> np.ndarray:
    """The window's rows as the service's row sample holds them: the baseline row sample's
    columns, at most ROW_SAMPLE_CAP rows. The rows are independent draws, so the first
    ROW_SAMPLE_CAP are as uniform a subsample as the readers' random one."""
    names = baseline.row_sample.columns
    return np.column_stack([columns[name][:ROW_SAMPLE_CAP] for name in names])


@dataclass
class Tally:
    windows: int = 0
    detected: int = 0  # the feature's `detected`
    by_method: dict[str, int] = field(default_factory=dict)  # score > the method's threshold
    pvalue_below: int = 0  # ks / chi2: adjusted p-value < false_alarm_rate

    def add(self, drift: FeatureDrift, rate: float) -> None:
        self.add_verdict(drift.detected)
        for result in drift.methods:
            if result.threshold is not None and result.score is not None:
                flagged = result.score > result.threshold
                self.by_method[result.method] = self.by_method.get(result.method, 0) + flagged
            if result.pvalue is not None:
                self.pvalue_below += result.pvalue < rate

    def add_verdict(self, detected: bool) -> None:
        self.windows += 1
        self.detected += detected

    def rate(self, method: str | None = None) -> float:
        if method is None:
            return self.detected / self.windows
        if method in ("ks", "chi2"):
            return self.pvalue_below / self.windows
        return self.by_method.get(method, 0) / self.windows


Tallies = dict[tuple[str, int], Tally]


def run(
    baseline: Baseline,
    calibration: Calibration,
    settings: DriftSettings,
    scenario: Scenario,
    seed: int,
    pca: PcaModel | None = None,
) -> Tallies:
    """Scores every window of `scenario`; with `pca`, the multivariate check too (under
    the MULTIVARIATE key)."""
    tallies: Tallies = {}
    rng = np.random.default_rng(seed)
    if scenario.feature != "*":
        # Only the changed feature is scored (5x faster); its p-values are then adjusted
        # over one test instead of five, which only the ks / chi2 rows show.
        baseline = replace(baseline, features=(baseline.feature(scenario.feature),))
    for n, count in scenario.windows.items():
        for i in range(count):
            window = summarise(baseline, draw(rng, n, scenario.name), n, seed=i)
            features, _ = evaluate_features(baseline, window, calibration, settings)
            for drift in features:
                tally = tallies.setdefault((drift.feature, n), Tally())
                tally.add(drift, settings.false_alarm_rate)
            if pca is not None:
                add_multivariate(tallies, pca, window)
    return tallies


def add_multivariate(tallies: Tallies, pca: PcaModel, window: WindowSummary) -> None:
    result = pca.evaluate(window.row_sample)
    tally = tallies.setdefault((MULTIVARIATE, window.rows), Tally())
    tally.add_verdict(result is not None and result.detected)


def upper_bound(alarms: int, windows: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper confidence bound of a binomial rate."""
    if alarms >= windows:
        return 1.0
    return float(stats.beta.ppf(confidence, alarms + 1, windows - alarms))


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def header(columns: list[str], sizes: list[int]) -> None:
    print("| " + " | ".join([*columns, *(f"n={n:,}" for n in sizes)]) + " |")
    print("|" + "---|" * (len(columns) + len(sizes)))


def print_false_alarms(
    null: Tallies, sizes: list[int], windows: dict[int, int], rate: float
) -> None:
    print(f"### False alarms on stationary windows (configured rate {percent(rate)})")
    print()
    header(["feature"], sizes)
    totals = {n: [0, 0] for n in sizes}
    for feature in FEATURES:
        for n in sizes:
            totals[n][0] += null[feature, n].detected
            totals[n][1] += null[feature, n].windows
        print(f"| {feature} | " + " | ".join(alarm_cell(null[feature, n]) for n in sizes) + " |")
    cells = [f"{percent(a / w)} (<= {percent(upper_bound(a, w))})" for a, w in totals.values()]
    print("| all features | " + " | ".join(cells) + " |")
    if (MULTIVARIATE, sizes[0]) in null:
        cells = [alarm_cell(null[MULTIVARIATE, n]) for n in sizes]
        print(f"| {MULTIVARIATE} | " + " | ".join(cells) + " |")
    print("| windows | " + " | ".join(f"{windows[n]}" for n in sizes) + " |")
    print()
    print("Share of windows where the feature alarmed (`detected`), with the 95% one-sided")
    print("Clopper-Pearson upper bound of the true rate. The multivariate check sees at most")
    print(f"{ROW_SAMPLE_CAP:,} rows of a window (the service's row sample).")


def alarm_cell(tally: Tally) -> str:
    return f"{percent(tally.rate())} (<= {percent(upper_bound(tally.detected, tally.windows))})"


def print_detection(results: dict[str, Tallies], sizes: list[int], windows: dict[int, int]) -> None:
    print("### Detection rate of injected changes")
    print()
    header(["change", "feature"], sizes)
    for change, feature, note in CHANGES:
        tallies = results[change]
        label = f"{change} ({note})" if note else change
        cells = [percent(tallies[feature, n].rate()) for n in sizes]
        print(f"| {label} | {feature} | " + " | ".join(cells) + " |")
    print("| windows | | " + " | ".join(f"{windows[n]}" for n in sizes) + " |")


def print_by_method(null: Tallies, results: dict[str, Tallies], sizes: list[int]) -> None:
    print("### Alarm rate by method")
    print()
    print("Effect sizes: score > the method's own threshold; ks / chi2: adjusted p-value < the")
    print("false-alarm rate (p-values inform, they do not decide `detected`).")
    print()
    header(["scenario", "feature", "method"], sizes)
    rows = [("stationary", feature, null) for feature in FEATURES]
    rows += [(change, feature, results[change]) for change, feature, _ in CHANGES]
    for scenario, feature, tallies in rows:
        numeric = feature in NUMERIC
        methods = [m for m in EFFECT_SIZE_METHODS if numeric or m != "wasserstein"]
        for method in [*methods, "ks" if numeric else "chi2"]:
            cells = [percent(tallies[feature, n].rate(method)) for n in sizes]
            print(f"| {scenario} | {feature} | {method} | " + " | ".join(cells) + " |")


@dataclass(frozen=True)
class StartupTimes:
    calibration_s: float  # univariate thresholds
    pca_s: float  # PCA fit and its calibration
    features: int


def startup_times_20_features(settings: DriftSettings) -> StartupTimes:
    """Calibration of the 20-feature baseline of benchmarks/baseline_build.py (15 numeric
    with 5,000-value samples, 5 categorical), built from 200,000 generated rows."""
    from benchmarks.baseline_build import generate, schema_document

    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        data = Path(tmp) / "train.csv"
        generate(data, TRAINING_ROWS, "fixed")
        baseline = build_baseline(parse_schema(schema_document(), "schema.yaml"), data)
    started = time.perf_counter()
    calibrate(baseline, settings)
    calibrated = time.perf_counter()
    fit_pca(baseline, false_alarm_rate=settings.false_alarm_rate)
    fitted = time.perf_counter()
    return StartupTimes(calibrated - started, fitted - calibrated, len(baseline.features))


def _stationary_windows(n: int) -> int:
    return 2000 if n <= 100 else 1000 if n <= 1000 else 500 if n <= 10_000 else 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="a fifth of the windows")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    divisor = 5 if args.quick else 1
    begun = time.perf_counter()
    settings = DriftSettings()
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        started = time.perf_counter()
        baseline = build(Path(tmp))
        build_s = time.perf_counter() - started
    started = time.perf_counter()
    calibration = calibrate(baseline, settings)
    calibration_s = time.perf_counter() - started
    started = time.perf_counter()
    pca = fit_pca(baseline, false_alarm_rate=settings.false_alarm_rate)
    pca_s = time.perf_counter() - started
    twenty = startup_times_20_features(settings)
    features = len(baseline.features)
    print(
        f"baseline: {TRAINING_ROWS:,} training rows, {features} features, built in {build_s:.1f} s"
    )
    print(
        f"settings: false_alarm_rate {settings.false_alarm_rate}, resamples {settings.resamples}, "
        f"floors {dict(settings.floors)}, detection {settings.numeric_method} (numeric) / "
        f"{settings.categorical_method} (categorical)"
    )
    print(
        f"calibration: {calibration_s:.2f} s for this baseline; {twenty.calibration_s:.2f} s "
        f"for the {twenty.features}-feature baseline of benchmarks/baseline_build.py "
        "(5,000-value samples)"
    )
    print(
        f"PCA fit and calibration: {pca_s:.2f} s for this baseline; {twenty.pca_s:.2f} s for "
        f"the {twenty.features}-feature one"
    )
    print()
    # Large windows cost ~0.5 s each to score (KS and Wasserstein on 100,000 values).
    # Small windows are cheap: many of them, to measure a 1% rate to a few tenths of a %.
    stationary = {n: _stationary_windows(n) // divisor for n in sizes}
    shifted = {n: (200 if n <= 10_000 else 30) // divisor for n in sizes}
    rate = settings.false_alarm_rate
    null = run(baseline, calibration, settings, Scenario("none", "*", stationary), args.seed, pca)
    results = {
        change: run(
            baseline, calibration, settings, Scenario(change, feature, shifted), args.seed + i + 1
        )
        for i, (change, feature, _) in enumerate(CHANGES)
    }
    print_false_alarms(null, sizes, stationary, rate)
    print()
    print_detection(results, sizes, shifted)
    print()
    print_by_method(null, results, sizes)
    print()
    print(f"total runtime {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
