"""`mlmon-stats report`: one offline evaluation of a data file, gated by its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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
