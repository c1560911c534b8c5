"""Worst segments by metric, and the features a multivariate drift is blamed on."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.schema import Feature, Schema, Source
from stats_service.baseline.contents import Baseline, DataInfo, RowSample
from stats_service.checks.multivariate import fit_pca, rank_root_cause
from stats_service.checks.results import (
    EstimatedMetric,
    EstimatedPerformance,
    FeatureDrift,
    Histogram,
    MethodResult,
    PerformanceResult,
    SegmentResult,
)
from stats_service.checks.segments import worst_segments


def estimated(accuracy: float) -> EstimatedPerformance:
    metric = EstimatedMetric("accuracy", accuracy, 0.8, 1.0, 0.9, 0.01, accuracy < 0.8)
    return EstimatedPerformance(task="binary", method="cbpe", samples=100, metrics=(metric,))


def test_worst_segment_is_named_per_metric_and_never_the_pool() -> None:
    segments = (
        SegmentResult("channel", "web", 500, estimated_performance=estimated(0.9)),
        SegmentResult("channel", "store", 300, estimated_performance=estimated(0.7)),
        SegmentResult("channel", "__other__", 50, estimated_performance=estimated(0.1)),
        SegmentResult(
            "channel",
            "web",
            500,
            performance=PerformanceResult("regression", 10, {"mae": 3.0}),
        ),
        SegmentResult(
            "channel",
            "store",
            300,
            performance=PerformanceResult("regression", 10, {"mae": 1.0}),
        ),
    )
    assert dict(worst_segments(segments)) == {
        "estimated_accuracy": "channel=store",
        "mae": "channel=web",  # errors: the highest is the worst
    }


def drift(name: str, score: float, detected: bool) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        kind="numeric",
        samples=100,
        methods=(MethodResult("jensenshannon", score, 0.1),),
        detection_method="jensenshannon",
        detected=detected,
        histogram=Histogram((), (), ()),
    )


def test_broken_correlation_is_blamed_on_the_features_that_broke() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=4000)
    train = np.column_stack([a, a + 0.1 * rng.normal(size=4000), rng.normal(size=4000)])
    names = ("a", "b", "c")
    baseline = Baseline(
        format_version=1,
        created_at="2024-01-01T00:00:00Z",
        schema=Schema(tuple(Feature(n, "numeric", Source("column", n)) for n in names)),
        schema_hash="",
        data=DataInfo("train.csv", "", 4000),
        bins=10,
        sample_size=4000,
        features=(),
        row_sample=RowSample(names, tuple(map(tuple, train.tolist()))),
    )
    pca = fit_pca(baseline, replicates=200)
    assert pca is not None
    live_a = rng.normal(size=1000)  # b no longer follows a; marginals unchanged
    live = np.column_stack([live_a, rng.normal(size=1000), rng.normal(size=1000)])
    result = pca.evaluate(live)
    assert result is not None and result.detected
    ranked = rank_root_cause(
        [drift("a", 0.01, False), drift("b", 0.02, False), drift("c", 0.01, False)], result, pca
    )
    assert {ranked[0].feature, ranked[1].feature} == {"a", "b"}
    shares = [c.error_share for c in ranked]
    assert all(s is not None for s in shares)
    assert sum(s for s in shares if s is not None) == pytest.approx(1.0)
    assert ranked[-1].feature == "c"
