"""Categorical features per distinct value (`CodedColumn`) must equal them per cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.features.coded import CodedColumn, compute_coded_features
from exporter.features.compute import compute_table_features
from exporter.features.table import RawColumn, RawTable
from exporter.schema import parse_schema
from stats_service.baseline import build as build_module
from stats_service.baseline import readers
from stats_service.baseline.build import build_baseline
from stats_service.baseline.csv_fast import BlockDecoder
from stats_service.baseline.files import baseline_to_dict
from tests.unit.test_training_serving_parity import KEY, TRICKY, tricky_csv

SCHEMA = parse_schema(
    {
        "features": [
            {"name": "c", "type": "categorical", "categories": ["a", "b"]},
            {"name": "flag", "type": "boolean", "nullable": True},
            {"name": "h", "type": "categorical", "log": "hash", "nullable": True},
            {"name": "first", "type": "categorical", "source": {"tensor": "t", "index": 0}},
            {"name": "x", "type": "numeric", "nullable": True},
            {"name": "c_again", "type": "categorical", "source": "c"},
        ]
    },
    "coded.yaml",
)


def coded(values: list[Any]) -> CodedColumn:
    """The column as a decoder codes it: distinct values in order of first appearance."""
    dictionary = list(dict.fromkeys(map(repr, values)))
    codes = np.array([dictionary.index(repr(v)) for v in values], dtype=np.intp)
    distinct = [values[int(np.flatnonzero(codes == k)[0])] for k in range(len(dictionary))]
    return CodedColumn(values, codes=codes, dictionary=distinct)


def table(columns: dict[str, RawColumn]) -> RawTable:
    return RawTable(len(next(iter(columns.values())).values), columns)


def test_coded_features_equal_the_features_of_every_cell() -> None:
    c = ["a", "z", None, "a", "b", "z", 3, 3.0]  # "z" unseen, None missing, 3 and 3.0: "3"
    flag = ["true", "yes", None, "FALSE", "1", 1, 0.0, "true"]  # "yes": type mismatch
    columns = {
        "c": coded(c),
        "flag": coded(flag),
        "h": coded(["p", "q", "p", None, "p", "q", "q", "p"]),
        "t": coded([[1, 2], [3], [1, 2], [3], [1], [3], [1], [3]]),
        "x": RawColumn(np.arange(8.0)),
        "extra": coded(["e"] * 8),
    }
    plain = {name: RawColumn(column.values) for name, column in columns.items()}
    expected = compute_table_features(SCHEMA, table(plain), hash_key=KEY)
    batch, features = compute_coded_features(SCHEMA, table(columns), hash_key=KEY)
    # Only whole columns are coded; a path into a value is read per row.
    assert set(features) == {"c", "flag", "h", "c_again"}
    for name, feature in features.items():
        texts = [feature.texts[code] for code in feature.codes.tolist()]
        assert texts == expected.categorical[name], name
    assert batch.categorical == {"first": expected.categorical["first"]}
    np.testing.assert_array_equal(batch.numeric["x"], expected.numeric["x"])
    counts = batch.issue_counts()
    for feature in features.values():
        counts.update(feature.issue_counts())
    assert counts == expected.issue_counts()
    assert counts["unexpected_field:extra"] == 8  # and "c", read by coded features only, is not
    assert {"unseen_category:c", "missing:c", "type_mismatch:flag"} <= counts.keys()


def test_a_coded_column_with_absent_rows_is_read_per_row() -> None:
    present = np.array([True, False, True])
    column = CodedColumn(["a", None, "b"], present, codes=np.arange(3), dictionary=["a", None, "b"])
    one = parse_schema({"features": [{"name": "c", "type": "categorical"}]}, "one.yaml")
    batch, features = compute_coded_features(one, RawTable(3, {"c": column}))
    assert features == {}
    assert batch.issue_counts() == {"missing_field:c": 1}


def test_hashed_features_need_a_key() -> None:
    with pytest.raises(ValueError, match="features h have log: hash; a hash key is required"):
        compute_coded_features(SCHEMA, table({"c": coded(["a"])}))


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    document.pop("created_at")
    for feature in document["features"]:
        for key in ("mean", "std"):
            if feature.get(key) is not None:
                feature[key] = float(f"{feature[key]:.12g}")
    return document


def test_baseline_from_coded_blocks_equals_the_csv_module_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(tricky_csv(3000))
    monkeypatch.setattr(readers, "_BLOCK_BYTES", 4096)  # many blocks, typed after the first
    # Past this many, new categories count as __other__: which ones depends on the order.
    monkeypatch.setattr(build_module, "MAX_TRACKED_CATEGORIES", 100)

    def build() -> dict[str, Any]:
        baseline = build_baseline(TRICKY, path, hash_key=KEY, chunk_rows=700, sample_size=300)
        return comparable(baseline_to_dict(baseline))

    fast = build()
    monkeypatch.setattr(BlockDecoder, "decode", lambda *_: None)  # every block: csv module
    per_cell = build()
    assert fast == per_cell
    categories = {f["name"]: f for f in fast["features"] if "categories" in f}
    assert len(categories["country"]["categories"]) == 100
    assert categories["country"]["other_proportion"] > 0.1
    assert fast["issue_counts"]["unseen_category:country"] > 0
