"""Estimated performance (CBPE) against realised, on NannyML's synthetic datasets.

    .venv/bin/python benchmarks/performance_estimation.py [--cache DIR]

The data: NannyML's wheel ships its synthetic binary ("work from home") and multiclass
("credit card") datasets with known performance drops, reference and analysis sets plus
the analysis set's ground truth (`*_gt.csv`). The wheel is fetched once with
`pip download nannyml==0.13.1 --no-deps -d DIR` (nannyml is not installed) and the CSV
files are read out of it with zipfile. The reference becomes a baseline
(`mlmon-stats baseline`'s code, the probabilities as columns `proba_<class>`); the
analysis set is cut into chunks of 5,000 rows, as NannyML does for these sets, each
written as a data file and evaluated as `mlmon-stats report` does (labels included, so
the realised metrics are the service's own). Printed: per chunk the estimated and
realised accuracy and ROC AUC, whether the estimate left its band, and per metric the
mean absolute gap between estimate and realised (the aim: at most 0.02).

With `--nannyml-python PY` (an interpreter with nannyml 0.13.1 installed, e.g.
`python3 -m venv /tmp/nml && /tmp/nml/bin/pip install nannyml==0.13.1 statsmodels`)
NannyML's own CBPE runs on the same sets and chunks in that interpreter, and its estimate
is printed beside ours with the mean absolute difference between the two: what the
published implementation itself reaches on these sets is the fair yardstick for ours.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.schema import parse_schema  # noqa: E402
from stats_service.baseline.build import build_baseline  # noqa: E402
from stats_service.offline.data_window import summarize_file  # noqa: E402
from stats_service.service.runner import evaluate_window, prepare_model  # noqa: E402
from stats_service.settings import load  # noqa: E402

WHEEL = "nannyml-0.13.1-py3-none-any.whl"
DATA = "nannyml/datasets/data/"
CHUNK = 5000
METRICS = ("accuracy", "roc_auc")
# Run in the nannyml interpreter: its CBPE estimate per analysis chunk, as JSON.
NANNYML_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import nannyml as nml
name, metrics, chunk = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
if name == "synthetic_sample":
    reference, analysis, _ = nml.load_synthetic_binary_classification_dataset()
    options = dict(y_pred_proba="y_pred_proba", y_true="work_home_actual",
                   problem_type="classification_binary")
else:
    reference, analysis, _ = nml.load_synthetic_multiclass_classification_dataset()
    classes = ("prepaid_card", "highstreet_card", "upmarket_card")
    options = dict(y_pred_proba={c: "y_pred_proba_" + c for c in classes}, y_true="y_true",
                   problem_type="classification_multiclass")
estimator = nml.CBPE(y_pred="y_pred", metrics=metrics, chunk_size=chunk, **options)
estimator.fit(reference)
frame = estimator.estimate(analysis).filter(period="analysis").to_df()
print(json.dumps({m: [float(v) for v in frame[(m, "value")]] for m in metrics}))
"""

BINARY: dict[str, Any] = {
    "name": "synthetic_sample",
    "label": "work_home_actual",
    "probabilities": {"y_pred_proba": "proba_1"},
    "features": [
        {"name": "distance_from_office", "type": "numeric", "nullable": True},
        {"name": "salary_range", "type": "categorical", "nullable": True},
        {"name": "gas_price_per_litre", "type": "numeric", "nullable": True},
        {"name": "public_transportation_cost", "type": "numeric", "nullable": True},
        {"name": "wfh_prev_workday", "type": "categorical", "nullable": True},
        {"name": "workday", "type": "categorical", "nullable": True, "segment": True},
        {"name": "tenure", "type": "numeric", "nullable": True},
    ],
    "prediction": {"task": "binary", "classes": ["0", "1"]},
}
MULTICLASS: dict[str, Any] = {
    "name": "mc",
    "label": "y_true",
    "probabilities": {
        f"y_pred_proba_{c}": f"proba_{c}"
        for c in ("prepaid_card", "highstreet_card", "upmarket_card")
    },
    "features": [
        {"name": "acq_channel", "type": "categorical", "nullable": True, "segment": True},
        {"name": "app_behavioral_score", "type": "numeric", "nullable": True},
        {"name": "requested_credit_limit", "type": "numeric", "nullable": True},
        {"name": "app_channel", "type": "categorical", "nullable": True},
        {"name": "credit_bureau_score", "type": "numeric", "nullable": True},
        {"name": "stated_income", "type": "numeric", "nullable": True},
        {"name": "is_customer", "type": "categorical", "nullable": True},
    ],
    "prediction": {
        "task": "multiclass",
        "classes": ["prepaid_card", "highstreet_card", "upmarket_card"],
    },
}


def wheel(cache: Path) -> Path:
    path = cache / WHEEL
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "nannyml==0.13.1",
                "--no-deps",
                "-d",
                str(cache),
            ],
            check=True,
            timeout=600,
        )
    return path


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with archive.open(DATA + name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))


def write_csv(path: Path, rows: list[dict[str, str]], renames: dict[str, str]) -> None:
    columns = [renames.get(c, c) for c in rows[0]]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(list(row.values()) for row in rows)


def nannyml_estimates(python: str, name: str) -> dict[str, list[float]]:
    done = subprocess.run(
        [python, "-c", NANNYML_SCRIPT, name, ",".join(METRICS), str(CHUNK)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    estimates: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return estimates


def run(
    dataset: dict[str, Any], archive: zipfile.ZipFile, work: Path, nannyml: str | None
) -> dict[str, float]:
    name, label = dataset["name"], dataset["label"]
    schema = parse_schema(
        {"model": name, "features": dataset["features"], "prediction": dataset["prediction"]},
        name,
    )
    reference = read_csv(archive, f"{name}_reference.csv")
    analysis = read_csv(archive, f"{name}_analysis.csv")
    truth = {row["id"]: row[label] for row in read_csv(archive, f"{name}_analysis_gt.csv")}
    renames = dataset["probabilities"]
    write_csv(work / "reference.csv", reference, renames)
    baseline = build_baseline(
        schema, work / "reference.csv", prediction_column="y_pred", label_column=label
    )
    assert baseline.reference is not None
    settings = load(None, overrides={"baselines": f"{name}=x", "min_samples": 1})
    context = prepare_model(name, baseline, "reference", settings)
    print(
        f"\n{name}: {len(reference):,} reference rows ({baseline.reference.count:,} kept), "
        f"calibration: {getattr(context.estimator, 'calibration', context.estimator)}"
    )
    theirs = nannyml_estimates(nannyml, name) if nannyml else None
    beside = f" {'nannyml':>8}" if theirs else ""
    print(f"{'chunk':>12}  "
          + "  ".join(f"{m + ' est':>13} {'realised':>8}{beside}" for m in METRICS)
          + "  flagged")  # fmt: skip
    gaps: dict[str, list[float]] = {metric: [] for metric in METRICS}
    differences: dict[str, list[float]] = {metric: [] for metric in METRICS}
    actuals: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for start in range(0, len(analysis), CHUNK):
        rows = [{**row, label: truth[row["id"]]} for row in analysis[start : start + CHUNK]]
        path = work / "chunk.csv"
        write_csv(path, rows, renames)
        summary = summarize_file(
            baseline, path, prediction_column="y_pred", label_column=label, model=name
        )
        result = evaluate_window(context, summary)
        estimated, realised = result.estimated_performance, result.performance
        assert estimated is not None and realised is not None, result.message
        cells, flagged = [], []
        for metric in METRICS:
            guess, actual = estimated.metric(metric), realised.metrics.get(metric)
            assert guess is not None and actual is not None, estimated.reason
            gaps[metric].append(abs(guess.value - actual))
            actuals[metric].append(actual)
            cell = f"{guess.value:13.4f} {actual:8.4f}"
            if theirs:
                published = theirs[metric][start // CHUNK]
                differences[metric].append(abs(guess.value - published))
                cell += f" {published:8.4f}"
            cells.append(cell)
            if guess.alert:
                flagged.append(metric)
        span = f"{start}-{start + len(rows) - 1}"
        print(f"{span:>12}  " + "  ".join(cells) + f"  {','.join(flagged) or '-'}")
    means = {metric: sum(v) / len(v) for metric, v in gaps.items()}
    print("mean absolute gap: " + ", ".join(f"{m} {v:.4f}" for m, v in means.items()))
    if theirs:
        published_gap = {
            m: sum(abs(e - r) for e, r in zip(theirs[m], actuals[m], strict=True)) / len(actuals[m])
            for m in METRICS
        }
        print(
            "nannyml's own estimate: mean absolute gap "
            + ", ".join(f"{m} {published_gap[m]:.4f}" for m in METRICS)
            + "; ours vs nannyml's: "
            + ", ".join(f"{m} {sum(v) / len(v):.4f}" for m, v in differences.items())
        )
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nannyml")
    parser.add_argument(
        "--nannyml-python",
        metavar="PY",
        help="an interpreter with nannyml installed: its CBPE printed beside ours",
    )
    args = parser.parse_args()
    with zipfile.ZipFile(wheel(args.cache)) as archive, tempfile.TemporaryDirectory() as tmp:
        results = {
            d["name"]: run(d, archive, Path(tmp), args.nannyml_python) for d in (BINARY, MULTICLASS)
        }
    worst = max(value for means in results.values() for value in means.values())
    print(f"\nlargest mean gap {worst:.4f} (aim <= 0.02): {'met' if worst <= 0.02 else 'MISSED'}")


if __name__ == "__main__":
    main()
