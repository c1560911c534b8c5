"""Data quality of a window against a real baseline: hand-worked counts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from exporter.schema import parse_schema
from stats_service.baseline.build import Baseline, build_baseline
from stats_service.baseline.contents import CategoricalFeatureBaseline, NumericFeatureBaseline
from stats_service.checks.quality import evaluate_quality
from stats_service.checks.results import FeatureQuality
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    WindowSummary,
    summarize_categorical,
    summarize_numeric,
)

SCHEMA = parse_schema(
    {
        "features": [
            # The declared range [0, 5] is narrower than the data: training rows above it
            # are issues of the schema, not values outside the training range.
            {"name": "x", "type": "numeric", "nullable": True, "range": [0, 5]},
            {"name": "c", "type": "categorical", "nullable": True},
            {"name": "e", "type": "numeric", "nullable": True},
        ]
    },
    "s.yaml",
)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    # x: 1..10 plus 2 missing of 12 rows; c: a, b, a, b, ... plus 1 missing; e: never set.
    lines = ["x,c,e"]
    lines += [f"{v},{'ab'[v % 2]}," for v in range(1, 11)]
    lines += [",a,", ",,"]
    path = tmp_path_factory.mktemp("quality") / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    return build_baseline(SCHEMA, path)


def numeric(baseline: Baseline, name: str, values: list[float]) -> ColumnSummary:
    feature = baseline.feature(name)
    assert isinstance(feature, NumericFeatureBaseline)
    return summarize_numeric(np.array(values, dtype=float), feature)


def window(columns: Mapping[str, ColumnSummary]) -> WindowSummary:
    return WindowSummary(
        model="m", window="1h", start_ts=0.0, end_ts=3600.0, rows=8, columns=columns
    )


def by_feature(result: tuple[FeatureQuality, ...]) -> dict[str, FeatureQuality]:
    return {q.feature: q for q in result}


def test_window_ratios_against_the_training_data(baseline: Baseline) -> None:
    nan = float("nan")
    columns = {
        # 2 of 8 missing; of the 6 values, 0.5 is below the training minimum 1 and 11, 12
        # are above its maximum 10 (5 and 10 are inside, the bounds included).
        "x": numeric(baseline, "x", [0.5, 1, 5, 10, 11, 12, nan, nan]),
        # 1 of 6 missing; of the 5 values, "z" twice is not a training category.
        "c": summarize_categorical(["a", "b", "z", None, "z", "a"]),
    }
    quality = by_feature(evaluate_quality(baseline, window(columns)))
    x, c = quality["x"], quality["c"]
    assert (x.missing_ratio, x.out_of_range_ratio, x.unseen_ratio) == (0.25, 0.5, 0.0)
    assert c.missing_ratio == pytest.approx(1 / 6)
    assert (c.unseen_ratio, c.out_of_range_ratio) == (0.4, 0.0)


def test_baseline_ratios_sit_next_to_the_window(baseline: Baseline) -> None:
    columns = {"x": numeric(baseline, "x", [3.0]), "c": summarize_categorical(["a"])}
    quality = by_feature(evaluate_quality(baseline, window(columns)))
    assert quality["x"].baseline_missing_ratio == pytest.approx(2 / 12)
    assert quality["c"].baseline_missing_ratio == pytest.approx(1 / 12)
    # Training values 6..10 break the schema's range but are inside the training range,
    # which is what the window's out-of-range ratio is measured against.
    assert baseline.issue_counts["out_of_range:x"] == 5
    for q in quality.values():
        assert (q.baseline_unseen_ratio, q.baseline_out_of_range_ratio) == (0.0, 0.0)


def test_one_result_per_summarised_feature_in_baseline_order(baseline: Baseline) -> None:
    columns = {"c": summarize_categorical(["a"]), "x": numeric(baseline, "x", [3.0])}
    assert [q.feature for q in evaluate_quality(baseline, window(columns))] == ["x", "c"]
    assert evaluate_quality(baseline, window({})) == ()


def test_store_remainder_counts_as_outside_the_vocabulary(baseline: Baseline) -> None:
    # 2 "a" broken down, 1 "q" and 3 values the store did not break down: 4 of 6 outside.
    columns = {"c": CategoricalSummary(counts={"a": 2, "q": 1}, missing=2, other=3)}
    c = evaluate_quality(baseline, window(columns))[0]
    assert (c.unseen_ratio, c.missing_ratio) == (4 / 6, 0.25)


def test_capped_vocabulary_has_no_unseen_values(tmp_path: Path) -> None:
    schema = parse_schema({"features": [{"name": "c", "type": "categorical"}]}, "s.yaml")
    path = tmp_path / "train.csv"
    path.write_text("c\n" + "".join(f"v{i}\n" for i in range(1100)))
    baseline = build_baseline(schema, path)
    feature = baseline.feature("c")
    assert isinstance(feature, CategoricalFeatureBaseline)
    assert feature.other_proportion > 0
    kept = feature.categories[0]
    rare = next(f"v{i}" for i in range(1100) if f"v{i}" not in feature.categories)
    # A value outside the kept categories may be a rare training value (like `rare`):
    # it belongs to __other__, so nothing is counted as unseen.
    columns = {"c": summarize_categorical([kept, rare, "brand-new"])}
    assert evaluate_quality(baseline, window(columns))[0].unseen_ratio == 0.0


def test_empty_and_all_missing_columns(baseline: Baseline) -> None:
    empty = {"x": numeric(baseline, "x", []), "c": summarize_categorical([])}
    for q in evaluate_quality(baseline, window(empty)):
        assert (q.missing_ratio, q.unseen_ratio, q.out_of_range_ratio) == (0.0, 0.0, 0.0)
    missing = {
        "x": numeric(baseline, "x", [float("nan")] * 3),
        "c": summarize_categorical([None, None]),
    }
    for q in evaluate_quality(baseline, window(missing)):
        assert (q.missing_ratio, q.unseen_ratio, q.out_of_range_ratio) == (1.0, 0.0, 0.0)


def test_feature_never_seen_in_training(baseline: Baseline) -> None:
    # No training value: no range, so every value the window has is outside it.
    columns = {"e": numeric(baseline, "e", [1.0, float("nan"), 2.0, 3.0])}
    e = evaluate_quality(baseline, window(columns))[0]
    assert (e.missing_ratio, e.out_of_range_ratio, e.baseline_missing_ratio) == (0.25, 1.0, 1.0)


def test_column_of_the_wrong_kind_is_refused(baseline: Baseline) -> None:
    with pytest.raises(TypeError, match="'x'"):
        evaluate_quality(baseline, window({"x": summarize_categorical(["a"])}))
    with pytest.raises(TypeError, match="'c'"):
        evaluate_quality(baseline, window({"c": numeric(baseline, "x", [1.0])}))
