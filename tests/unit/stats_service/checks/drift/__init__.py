"""Drift statistics tests, and small baselines built in memory for them.

The builders mirror `stats_service.baseline.build` (quantile edges and shares over the values,
a missing count, a sample) without going through a training file, so calibration and
feature-drift tests can set up exactly the reference they are about.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from exporter.schema import Schema
from stats_service.baseline.contents import (
    Baseline,
    CategoricalFeatureBaseline,
    DataInfo,
    FeatureBaseline,
    NumericFeatureBaseline,
    RowSample,
)


def numeric_feature(
    name: str,
    values: npt.ArrayLike,
    *,
    bins: int = 10,
    sample_size: int = 5000,
    seed: int = 0,
) -> NumericFeatureBaseline:
    """A numeric baseline of `values` (NaN = missing), as the builder would make it."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    edges: list[float] = [-np.inf, np.inf]
    proportions = [0.0]
    if len(present):
        interior = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = [-np.inf, *np.unique(interior).tolist(), np.inf]
        which = np.searchsorted(np.array(edges), present, side="right") - 1
        counts = np.bincount(which, minlength=len(edges) - 1)
        proportions = (counts / len(present)).tolist()
    sample = present
    if len(present) > sample_size:
        chosen = np.random.default_rng(seed).choice(len(present), sample_size, replace=False)
        sample = present[np.sort(chosen)]
    known = len(present) > 0
    return NumericFeatureBaseline(
        name=name,
        count=len(present),
        missing_count=len(values) - len(present),
        edges=tuple(edges),
        proportions=tuple(proportions),
        minimum=float(present.min()) if known else None,
        maximum=float(present.max()) if known else None,
        mean=float(present.mean()) if known else None,
        std=float(present.std()) if known else None,
        sample=tuple(sample.tolist()),
    )


def categorical_feature(
    name: str,
    values: Sequence[str | None],
    *,
    max_categories: int = 1000,
    sample_size: int = 5000,
) -> CategoricalFeatureBaseline:
    """A categorical baseline; categories beyond `max_categories` fold into __other__."""
    counts = Counter(v for v in values if v is not None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top, rest = ranked[:max_categories], ranked[max_categories:]
    total = sum(counts.values())
    present = [v for v in values if v is not None]
    return CategoricalFeatureBaseline(
        name=name,
        count=total,
        missing_count=len(values) - total,
        categories=tuple(c for c, _ in top),
        proportions=tuple(n / total for _, n in top),
        other_proportion=sum(n for _, n in rest) / total if total else 0.0,
        unseen_proportion=0.0,
        sample=tuple(present[:sample_size]),
    )


def make_baseline(
    *features: FeatureBaseline, prediction: FeatureBaseline | None = None
) -> Baseline:
    return Baseline(
        format_version=1,
        created_at="2024-01-01T00:00:00Z",
        schema=Schema(features=()),
        schema_hash="test",
        data=DataInfo(path="memory", sha256="0" * 64, rows=0),
        bins=10,
        sample_size=5000,
        features=tuple(features),
        row_sample=RowSample(columns=(), rows=()),
        prediction=prediction,
    )
