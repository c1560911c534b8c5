"""Labelled reference rows in a baseline: built from `proba_<class>` columns, saved and
loaded back, bounded, and absent from older baseline files (which still load)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from exporter.schema import parse_schema
from stats_service.baseline.build import build_baseline, load_baseline, save_baseline
from stats_service.baseline.contents import BaselineError

SCHEMA = parse_schema(
    {
        "model": "cards",
        "features": [
            {"name": "x", "type": "numeric"},
            {"name": "channel", "type": "categorical", "segment": True},
        ],
        "prediction": {"task": "multiclass", "classes": ["a", "b", "c"]},
    },
    "schema.yaml",
)


def write(path: Path, rows: int, seed: int = 0, labelled: bool = True) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["x", "channel", "proba_a", "proba_b", "proba_c", "prediction", "label"])
        for _ in range(rows):
            p = rng.dirichlet([1, 1, 1])
            label = "abc"[int(rng.choice(3, p=p))] if labelled else ""
            writer.writerow(
                [rng.normal(), rng.choice(["web", "store"]), *p.round(3), "abc"[p.argmax()], label]
            )


def test_reference_rows_round_trip_and_stay_bounded(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", 300)
    baseline = build_baseline(
        SCHEMA,
        tmp_path / "train.csv",
        prediction_column="prediction",
        label_column="label",
        reference_rows=200,
    )
    reference = baseline.reference
    assert reference is not None
    assert reference.task == "multiclass" and reference.classes == ("a", "b", "c")
    assert reference.count == 200 and reference.rows_seen == 300
    assert reference.probabilities.shape == (200, 3)
    # The probability columns are not features.
    assert [f.name for f in baseline.features] == ["x", "channel"]
    save_baseline(baseline, tmp_path / "baseline.json")
    loaded = load_baseline(tmp_path / "baseline.json")
    assert loaded.reference is not None
    assert loaded.reference.truth == reference.truth
    assert np.array_equal(loaded.reference.probabilities, reference.probabilities)


def test_a_baseline_without_reference_rows_still_loads(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", 50)
    baseline = build_baseline(SCHEMA, tmp_path / "train.csv")
    assert baseline.reference is None
    save_baseline(baseline, tmp_path / "old.json")
    document = json.loads((tmp_path / "old.json").read_text())
    assert "reference" not in document  # the format older mlmon versions wrote
    assert load_baseline(tmp_path / "old.json").reference is None


def test_a_bad_reference_section_names_the_key(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", 50)
    baseline = build_baseline(
        SCHEMA, tmp_path / "train.csv", prediction_column="prediction", label_column="label"
    )
    save_baseline(baseline, tmp_path / "b.json")
    document = json.loads((tmp_path / "b.json").read_text())
    document["reference"]["probabilities"][3] = [0.5, "x", 0.5]
    (tmp_path / "b.json").write_text(json.dumps(document))
    with pytest.raises(BaselineError, match=r"reference\.probabilities\[3\]\[1\]: expected"):
        load_baseline(tmp_path / "b.json")


def test_a_numeric_segment_feature_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"features\[0\]\.segment: .*categorical"):
        parse_schema({"features": [{"name": "x", "type": "numeric", "segment": True}]}, "s.yaml")
