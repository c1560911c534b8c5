"""`mlmon-stats` subcommands, their output files and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from exporter.schema import load_schema
from stats_service.baseline import BuildProgress, load_baseline
from stats_service.cli import main
from stats_service.progress import ProgressBar, render

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
    assert "the following arguments are required: --data, --out" in capsys.readouterr().err
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
