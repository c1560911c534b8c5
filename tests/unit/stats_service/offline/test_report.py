"""`mlmon-stats report`: one offline evaluation of a data file, gated by its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score  # type: ignore[import-untyped]

from stats_service.cli import main

SCHEMA = """
model: credit
features:
  - {name: age, type: numeric}
  - {name: income, type: numeric}
  - {name: country, type: categorical}
"""


def write_csv(path: Path, n: int, seed: int, *, age_shift: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    ages = rng.normal(40 + age_shift, 10, n)
    incomes = rng.lognormal(10, 0.5, n)
    countries = rng.choice(["fr", "de", "us"], n, p=[0.5, 0.3, 0.2])
    labels = (ages > 45).astype(int)
    lines = [
        f"{a:.2f},{i:.2f},{c},{(a - 20) / 50:.3f},{y}\n"
        for a, i, c, y in zip(ages, incomes, countries, labels, strict=True)
    ]
    path.write_text("age,income,country,prediction,label\n" + "".join(lines))
    return path


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA)
    out = tmp_path / "baseline.json"
    training = write_csv(tmp_path / "train.csv", 20_000, seed=1)
    code = main(
        [
            "baseline",
            "--schema",
            str(schema),
            "--data",
            str(training),
            "--out",
            str(out),
            "--prediction-column",
            "prediction",
        ]
    )
    assert code == 0
    return out


def report(baseline: Path, data: Path, *extra: str) -> list[str]:
    return ["report", "--baseline", str(baseline), "--data", str(data), *extra]


def test_data_like_the_training_data_exits_0_with_a_table(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_csv(tmp_path / "current.csv", 2_000, seed=2)
    assert main(report(baseline, current, "--prediction-column", "prediction")) == 0
    out = capsys.readouterr().out
    assert out.startswith("model credit, window current.csv: 2,000 rows, ok")
    assert "DRIFT" not in out
    for feature in ("age", "income", "country", "prediction"):
        assert f"\n  {feature} " in out


def test_drifted_data_exits_1_and_names_the_feature(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_csv(tmp_path / "current.csv", 2_000, seed=3, age_shift=8.0)
    assert main(report(baseline, current, "--prediction-column", "prediction")) == 1
    lines = capsys.readouterr().out.splitlines()
    flagged = {line.split()[0] for line in lines if line.rstrip().endswith("DRIFT")}
    assert flagged == {"age", "prediction"}


def test_json_output_with_performance_over_labelled_rows(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_csv(tmp_path / "current.csv", 1_000, seed=4)
    args = report(
        baseline, current, "--json", "--prediction-column", "prediction", "--label-column", "label"
    )
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "ok"
    assert document["rows"] == 1_000
    assert [f["feature"] for f in document["features"]] == ["age", "income", "country"]
    assert document["performance"]["samples"] == 1_000
    assert document["dataset_drift"] is False


def test_too_few_rows_is_an_error_not_a_pass(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_csv(tmp_path / "current.csv", 20, seed=5)
    assert main(report(baseline, current)) == 2
    assert "20 rows, fewer than min_samples=100" in capsys.readouterr().err


def test_missing_column_names_the_file_and_column(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_csv(tmp_path / "current.csv", 200, seed=6)
    assert main(report(baseline, current, "--label-column", "truth")) == 2
    assert "current.csv: label column 'truth' is not in the data" in capsys.readouterr().err


def write_scored(path: Path, n: int, seed: int) -> tuple[Path, list[int], list[float]]:
    """A binary classifier's file: features, a probability, the 0/1 ground truth."""
    rng = np.random.default_rng(seed)
    ages = rng.normal(40, 10, n)
    incomes = rng.lognormal(10, 0.5, n)
    countries = rng.choice(["fr", "de", "us"], n, p=[0.5, 0.3, 0.2])
    p = [f"{q:.4f}" for q in 1 / (1 + np.exp(-(ages - 42) / 6))]
    labels = (rng.random(n) < np.array(p, dtype=float)).astype(int).tolist()
    lines = [
        f"{a:.2f},{i:.2f},{c},{q},{y}\n"
        for a, i, c, q, y in zip(ages, incomes, countries, p, labels, strict=True)
    ]
    path.write_text("age,income,country,p,churned\n" + "".join(lines))
    return path, labels, [float(q) for q in p]


def build(tmp_path: Path, schema_text: str, name: str) -> Path:
    schema = tmp_path / "schema.yaml"
    schema.write_text(schema_text)
    training, _, _ = write_scored(tmp_path / "train.csv", 5_000, seed=11)
    out = tmp_path / name
    argv = ["baseline", "--schema", str(schema), "--data", str(training), "--out", str(out)]
    assert main([*argv, "--prediction-column", "p", "--label-column", "churned"]) == 0
    return out


SCORED = ["--prediction-column", "p", "--label-column", "churned"]
WITHOUT_MODEL = SCHEMA.replace("model: credit\n", "")


def test_header_names_the_baseline_file_when_the_schema_has_no_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = build(tmp_path, WITHOUT_MODEL, "churn-v2.json")
    current, _, _ = write_scored(tmp_path / "current.csv", 1_000, seed=12)
    capsys.readouterr()
    assert main(report(baseline, current, *SCORED)) == 0
    assert capsys.readouterr().out.startswith("model churn-v2, window current.csv: 1,000 rows, ok")
    assert main(report(baseline, current, "--json", *SCORED)) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["model"], document["window"]) == ("churn-v2", "current.csv")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_probabilities_against_0_1_labels_are_scored_as_binary_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = build(tmp_path, WITHOUT_MODEL, "baseline.json")
    current, labels, p = write_scored(tmp_path / "current.csv", 1_000, seed=13)
    capsys.readouterr()
    assert main(report(baseline, current, "--json", *SCORED)) == 0
    performance = json.loads(capsys.readouterr().out)["performance"]
    assert (performance["task"], performance["task_source"]) == ("binary", "inferred")
    assert performance["task_reason"] == "labels with 2 values (0, 1) and predictions in [0, 1]"
    assert "mae" not in performance["metrics"]
    predicted = [int(q >= 0.5) for q in p]
    assert performance["metrics"]["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert performance["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(labels, p))
    assert main(report(baseline, current, *SCORED)) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "performance" in x)
    assert line.startswith(
        "  performance (binary, inferred: labels with 2 values (0, 1) and predictions in "
        "[0, 1]) on 1,000 labelled rows: accuracy "
    )


def test_a_schema_task_is_reported_as_the_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    declared = SCHEMA + "prediction: {task: regression}\n"
    baseline = build(tmp_path, declared, "baseline.json")
    current, _, _ = write_scored(tmp_path / "current.csv", 500, seed=14)
    capsys.readouterr()
    assert main(report(baseline, current, "--json", *SCORED)) == 0
    performance = json.loads(capsys.readouterr().out)["performance"]
    assert (performance["task"], performance["task_source"]) == ("regression", "schema")
    assert set(performance["metrics"]) == {"mae", "rmse"}
    assert main(report(baseline, current, *SCORED)) == 0
    assert "  performance (regression, from the schema) on 500 labelled rows: mae " in (
        capsys.readouterr().out
    )
