"""`mlmon-stats` subcommands, their output files and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from exporter.schema import PredictionSpec, load_schema
from stats_service.baseline.build import BuildProgress, load_baseline
from stats_service.baseline.progress import ProgressBar, render
from stats_service.cli import main

CSV = "age,income,city,member,comment\n" + "".join(
    f"{20 + i % 50},{1000.5 + i},{['paris', 'lyon'][i % 2]},{'true' if i % 3 else 'false'},"
    f"note {i} of many\n"
    for i in range(200)
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(CSV)
    return path


def test_infer_schema_prints_yaml(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer-schema", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Starting schema inferred by mlmon-stats from 200 rows of train.csv.")
    document = yaml.safe_load(out)
    assert [(f["name"], f["type"]) for f in document["features"]] == [
        ("age", "integer"),
        ("income", "numeric"),
        ("city", "categorical"),
        ("member", "boolean"),
        ("comment", "text"),
    ]
    assert document["features"][0]["range"] == [20, 69]
    assert document["features"][2]["categories"] == ["lyon", "paris"]


def test_infer_schema_to_file_with_sample_rows(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    assert main(["infer-schema", str(data), "--out", str(out), "--sample-rows", "10"]) == 0
    schema = load_schema(out)
    assert schema.features[0].range == (20.0, 29.0)  # only the first 10 rows were read


def test_infer_schema_from_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rows.jsonl"
    lines = [{"x": i / 2, "user": {"country": "fr" if i % 2 else "de"}} for i in range(20)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["infer-schema", str(path), "--model", "m1"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["model"] == "m1"
    assert document["features"][1] == {
        "name": "user.country",
        "source": {"selector": "$.user.country"},
        "type": "categorical",
        "nullable": False,
        "categories": ["de", "fr"],
        "log": "clear",
    }


def write_scored(path: Path, header: str, n: int = 300, seed: int = 4) -> Path:
    """Rows of age, income, then a probability and a 0/1 label under `header`'s names."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    p = 1 / (1 + np.exp(-(age - 42) / 5))
    y = (rng.random(n) < p).astype(int)
    lines = "".join(
        f"{a:.2f},{1000 + i},{q:.4f},{t}\n"
        for i, (a, q, t) in enumerate(zip(age, p, y, strict=True))
    )
    path.write_text(header + "\n" + lines)
    return path


@pytest.mark.parametrize(
    ("header", "prediction", "label"),
    [
        ("age,income,prediction,label", "prediction", "label"),
        ("age,income,Y_Pred,Target", "Y_Pred", "Target"),  # any case
        ("age,income,proba,y", "proba", "y"),
    ],
)
def test_infer_schema_keeps_prediction_and_label_out_of_the_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, prediction: str, label: str
) -> None:
    data = write_scored(tmp_path / "scored.csv", header)
    out = tmp_path / "schema.yaml"
    assert main(["infer-schema", str(data), "--out", str(out)]) == 0
    schema = load_schema(out)
    assert [f.name for f in schema.features] == ["age", "income"]
    # Probabilities against 0/1 labels: a binary classifier, not a regression.
    assert schema.prediction == PredictionSpec("binary", ("0", "1"), None, 0.5)
    err = capsys.readouterr().err
    assert (
        f"note: took {prediction!r} as the prediction column (recognised by its name), "
        f"{label!r} as the label column (recognised by its name)" in err
    )
    assert "prediction task binary, inferred from labels with 2 values (0, 1)" in err


def test_infer_schema_flags_choose_the_columns_and_the_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(8)
    kinds = rng.choice(["basic", "plus", "pro"], 200)
    lines = "".join(
        f"{x:.3f},{k},{rng.choice(['basic', 'plus', 'pro'])},{rng.random():.3f},{i % 7}\n"
        for i, (x, k) in enumerate(zip(rng.normal(size=200), kinds, strict=True))
    )
    data = tmp_path / "plans.csv"
    data.write_text("x,plan,guess,confidence,y\n" + lines)
    argv = ["infer-schema", str(data), "--prediction-column", "guess", "--label-column", "plan"]
    assert main([*argv, "--score-column", "confidence"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    # "y" next to "x" is a coordinate, a feature; the flagged columns are not features.
    assert [f["name"] for f in document["features"]] == ["x", "y"]
    assert document["prediction"] == {"task": "multiclass", "classes": ["basic", "plus", "pro"]}


def test_infer_schema_reports_columns_named_like_a_role_it_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_scored(tmp_path / "scored.csv", "age,pred,prediction,label")
    assert main(["infer-schema", str(data)]) == 0
    captured = capsys.readouterr()
    # The first name of the list wins; the other stays a feature, and the user is told.
    assert [f["name"] for f in yaml.safe_load(captured.out)["features"]] == ["age", "pred"]
    assert "note: kept 'pred' as a feature although named like a prediction or label" in (
        captured.err
    )


def test_infer_schema_without_detection_keeps_every_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_scored(tmp_path / "scored.csv", "age,income,prediction,label")
    assert main(["infer-schema", str(data), "--no-detect-columns"]) == 0
    captured = capsys.readouterr()
    document = yaml.safe_load(captured.out)
    assert [f["name"] for f in document["features"]] == ["age", "income", "prediction", "label"]
    assert "prediction" not in document
    assert "took" not in captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--label-column", "churn"],
            "--label-column: expected a column of the data (columns: age, income, label, "
            "prediction); got 'churn'",
        ),
        (
            ["--prediction-column", "age", "--label-column", "age"],
            "--label-column: expected a column other than --prediction-column's; got 'age'",
        ),
    ],
)
def test_infer_schema_bad_flags_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    data = write_scored(tmp_path / "scored.csv", "age,income,prediction,label")
    assert main(["infer-schema", str(data), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlmon-stats: error: {message}")
    assert err.count("\n") == 1


def test_baseline_end_to_end(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_path = tmp_path / "schema.yaml"
    assert main(["infer-schema", str(data), "--out", str(schema_path)]) == 0
    out = tmp_path / "baseline.json"
    argv = ["baseline", "--schema", str(schema_path), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--bins", "4", "--sample-size", "20"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}: 200 rows, 6 feature columns")
    assert "\r" not in captured.err  # no progress bar: stderr is not a terminal
    baseline = load_baseline(out, load_schema(schema_path))
    assert (baseline.bins, baseline.sample_size, baseline.data.rows) == (4, 20, 200)
    assert len(baseline.feature("age").edges) == 5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--schema", "{tmp}/none.yaml"], "none.yaml: cannot read the schema"),
        (["--schema", "{tmp}/bad.yaml"], "bad.yaml: features[0].type: expected one of"),
        (["--data", "{tmp}/none.csv"], "none.csv: data file not found"),
        (["--data", "{tmp}/train.txt"], "train.txt: unsupported data file"),
        (["--schema", "{tmp}/hashed.yaml"], "features city have log: hash; pass --hash-key-file"),
        (["--out", "{tmp}/no/dir/b.json"], "b.json: cannot write the baseline: No such file"),
    ],
)
def test_baseline_errors_are_one_line_exit_2(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "bad.yaml").write_text("features:\n  - {name: age, type: flaot}\n")
    (tmp_path / "good.yaml").write_text("features:\n  - {name: age, type: integer}\n")
    (tmp_path / "hashed.yaml").write_text(
        "features:\n  - {name: city, type: categorical, log: hash}\n"
    )
    (tmp_path / "train.txt").write_text(CSV)
    options = {
        "--schema": str(tmp_path / "good.yaml"),
        "--data": str(data),
        "--out": str(tmp_path / "b.json"),
    }
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        options[flag] = value.format(tmp=tmp_path)
    assert main(["baseline", *[part for item in options.items() for part in item]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlmon-stats: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_hashed_baseline_with_key_file(data: Path, tmp_path: Path) -> None:
    schema = tmp_path / "hashed.yaml"
    schema.write_text("features:\n  - {name: city, type: categorical, log: hash}\n")
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    out = tmp_path / "b.json"
    argv = ["baseline", "--schema", str(schema), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--hash-key-file", str(key)]) == 0
    categories = load_baseline(out).feature("city").categories  # type: ignore[union-attr]
    assert len(categories) == 2
    assert all(len(c) == 16 for c in categories)


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["baseline", "--schema", "s.yaml"]) == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err
    assert main(["baseline", "--schema", "s", "--data", "d", "--out", "o", "--bins", "0"]) == 2
    assert main(["--help"]) == 0
    assert "infer-schema" in capsys.readouterr().out


def test_progress_bar_rendering() -> None:
    line = render(BuildProgress(rows=450_000, bytes_read=45, total_bytes=100), elapsed=2.0)
    assert line == "[##############................]  45.0%  450,000 rows  225,000 rows/s"
    stream = io.StringIO()
    times = iter([0.0, 0.05, 0.1, 0.5, 0.6])  # start, then one per call
    bar = ProgressBar(stream, clock=lambda: next(times), min_interval=0.2)
    bar(BuildProgress(10, 10, 100))  # drawn: the first one
    bar(BuildProgress(20, 20, 100))  # too soon
    bar(BuildProgress(30, 30, 100))  # drawn
    bar(BuildProgress(100, 100, 100))  # the last one is always drawn
    bar.finish()
    drawn = stream.getvalue()
    assert drawn.count("\r") == 3
    assert " 20 rows" not in drawn
    assert drawn.endswith("100.0%  100 rows  167 rows/s\n")
