"""Numeric window summaries: counts on the baseline's bins as a binary search of the same
values in float64 gives them, whether the column comes as float32 (SQLite) or not."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stats_service.baseline.contents import NumericFeatureBaseline
from stats_service.windows.sqlite import _as_stored
from stats_service.windows.summary import summarize_numeric
from tests.unit.stats_service.checks.drift import numeric_feature

FEATURE = numeric_feature("x", np.random.default_rng(0).normal(0.0, 10.0, 20_000))


def expected_counts(values: npt.NDArray[np.float64], edges: tuple[float, ...]) -> list[int]:
    """A binary search per value in float64: bin i holds edges[i] <= v < edges[i + 1],
    the end bins what lies beyond them."""
    present = values[~np.isnan(values)]
    which = np.searchsorted(np.asarray(edges), present, side="right") - 1
    counts: list[int] = np.bincount(
        np.clip(which, 0, len(edges) - 2), minlength=len(edges) - 1
    ).tolist()
    return counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_equal_numpys_on_values_at_edges_beyond_and_missing(dtype: type) -> None:
    feature = _as_stored(FEATURE)  # edges and range as float32 numbers
    rng = np.random.default_rng(1)
    values: npt.NDArray[np.floating[Any]] = rng.normal(0.0, 12.0, 50_000).astype(dtype)
    values[:200] = np.asarray(feature.edges[1:-1], dtype=dtype).repeat(25)[:200]  # on edges
    values[200:210] = [np.nan, np.inf, -np.inf, 1e30, -1e30, np.nan, 0.0, -0.0, 5.0, -5.0]
    summary = summarize_numeric(values, feature)
    as_float64 = values.astype(np.float64)
    assert list(summary.counts) == expected_counts(as_float64, feature.edges)
    assert summary.missing == 2
    present = as_float64[~np.isnan(as_float64)]
    assert feature.minimum is not None and feature.maximum is not None
    assert summary.below_minimum == np.count_nonzero(present < feature.minimum)
    assert summary.above_maximum == np.count_nonzero(present > feature.maximum)


def test_float32_values_against_edges_float32_cannot_hold_are_compared_in_float64() -> None:
    """An edge of 0.1 lies between two float32 numbers: float32(0.1) > 0.1, so that value
    is above the edge, not on it."""
    feature = dataclasses.replace(
        FEATURE, edges=(-np.inf, 0.1, np.inf), proportions=(0.5, 0.5), minimum=0.1, maximum=0.1
    )
    values = np.array([np.float32(0.1), 0.0, 1.0], dtype=np.float32)
    summary = summarize_numeric(values, feature)
    assert summary.counts == (1, 2)
    assert (summary.below_minimum, summary.above_maximum) == (1, 2)


def test_the_sample_is_the_present_values_in_float64_whatever_the_column() -> None:
    values = np.random.default_rng(2).normal(size=300_000).astype(np.float32)
    values[::7] = np.nan
    narrow = summarize_numeric(values, _as_stored(FEATURE), sample_cap=1000)
    wide = summarize_numeric(values.astype(np.float64), _as_stored(FEATURE), sample_cap=1000)
    assert narrow.sample.dtype == np.float64
    np.testing.assert_array_equal(narrow.sample, wide.sample)
    assert narrow.counts == wide.counts


def test_empty_all_missing_and_one_bin_windows() -> None:
    one_bin: NumericFeatureBaseline = dataclasses.replace(
        FEATURE, edges=(-np.inf, np.inf), proportions=(1.0,)
    )
    assert summarize_numeric(np.array([], dtype=np.float32), FEATURE).counts == (0,) * 10
    missing = summarize_numeric(np.full(5, np.nan, dtype=np.float32), FEATURE)
    assert (missing.present, missing.missing, len(missing.sample)) == (0, 5, 0)
    assert summarize_numeric(np.array([1.0, np.nan, -3.0]), one_bin).counts == (2,)
