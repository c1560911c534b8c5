"""Golden test: the same rows give identical feature values in training and serving.

Training: a CSV or JSON-lines file through the baseline's reader and
`compute_table_features`. Serving: the rows wrapped in each protocol's payload,
through that protocol's adapter and `compute_features`. Every feature type, every
protocol; values, missing values and issues must match exactly.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.analysis import protocols
from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
)
from exporter.features.compute import FeatureBatch, compute_features, compute_table_features
from exporter.schema import Schema, parse_schema
from stats_service.baseline import readers
from stats_service.baseline.readers import DataReader

KEY = b"0123456789abcdef-test-key"

SCALAR_FEATURES: list[dict[str, Any]] = [
    {"name": "amount", "type": "numeric", "nullable": True, "range": [0, 1000]},
    {"name": "count", "type": "integer", "range": [0, 10]},
    {"name": "member", "type": "boolean", "nullable": True},
    {"name": "country", "type": "categorical", "categories": ["fr", "de", "us"]},
    {"name": "email_domain", "type": "categorical", "log": "hash", "nullable": True},
    {"name": "comment", "type": "text", "nullable": True},
]
FLAT = parse_schema({"features": SCALAR_FEATURES}, "flat.yaml")
WITH_ARRAY = parse_schema(
    {"features": [*SCALAR_FEATURES, {"name": "pixels", "type": "array"}]}, "array.yaml"
)
TENSOR = parse_schema(
    {
        "features": [
            {"name": f"x{i}", "type": "numeric", "source": {"tensor": "x", "index": i}}
            for i in range(3)
        ]
    },
    "tensor.yaml",
)

ROWS: list[dict[str, Any]] = [
    {"amount": 12.5, "count": 3, "member": True, "country": "fr", "email_domain": "a.org",
     "comment": "fast delivery, thanks", "pixels": [[0, 255], [128, 64]]},
    {"amount": None, "count": 0, "member": False, "country": "zz", "email_domain": "b.com",
     "comment": "ok", "pixels": [[1, 2], [3, 4]]},
    {"amount": 2000.25, "count": 11, "member": None, "country": "us", "email_domain": None,
     "comment": None, "pixels": [[9, 9], [9, 9]]},
    {"amount": 0.1, "count": 7, "member": True, "country": "de", "email_domain": "a.org",
     "comment": "  spaced   words ", "pixels": [[0, 0], [0, 1]]},
]  # fmt: skip
TENSOR_ROWS: list[list[float | None]] = [[0.5, -1.0, 3.25], [1e-3, 2.0, None], [7.0, 8.5, -9.0]]


# No "" among the values: CSV cannot tell an empty string from a missing value, and
# both sides read a blank cell as missing (coerce_csv_cell).


def flat_rows() -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "pixels"} for row in ROWS]


def training(tmp_path: Path, schema: Schema, rows: list[dict[str, Any]], fmt: str) -> FeatureBatch:
    path = tmp_path / f"train.{fmt}"
    if fmt == "csv":
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_text(v) for k, v in row.items()})
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (table,) = DataReader(path).chunks(1000)
    return compute_table_features(schema, table, hash_key=KEY)


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def serving(protocol: str, path: str, body: bytes, schema: Schema, **kwargs: Any) -> FeatureBatch:
    headers = {"content-type": kwargs.pop("content_type", "application/json")}
    exchange = Exchange("POST", path, "", headers, body, 200, {}, b"")
    parsed = protocols.parse(protocol, exchange, AdapterConfig(**kwargs))
    return compute_features(schema, parsed.rows, hash_key=KEY)


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in rows[0]}


def v2_pd(rows: list[dict[str, Any]]) -> bytes:
    types = {"amount": "FP64", "count": "INT64", "member": "BOOL"}
    inputs = [
        {"name": name, "shape": [len(values)], "datatype": types.get(name, "BYTES"),
         "data": values}
        for name, values in columns(rows).items()
    ]  # fmt: skip
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


def csv_body(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(rows[0])]
    for row in rows:
        cells = [_csv_text(v) for v in row.values()]
        lines.append(",".join(f'"{c}"' if "," in c else c for c in cells))
    return ("\n".join(lines) + "\n").encode()


Payload = Callable[[], FeatureBatch]

SERVING: dict[str, tuple[Schema, str, Payload]] = {
    "v1 instances": (WITH_ARRAY, "jsonl", lambda: serving(
        "v1", "/v1/models/m:predict", json.dumps({"instances": ROWS}).encode(), WITH_ARRAY)),
    "v1 columns": (WITH_ARRAY, "jsonl", lambda: serving(
        "v1", "/v1/models/m:predict", json.dumps({"inputs": columns(ROWS)}).encode(),
        WITH_ARRAY)),
    "v2 pd": (FLAT, "csv", lambda: serving(
        "v2", "/v2/models/m/infer", v2_pd(flat_rows()), FLAT)),
    "mlflow dataframe_split": (WITH_ARRAY, "jsonl", lambda: serving(
        "mlflow", "/invocations", json.dumps({"dataframe_split": {
            "columns": list(ROWS[0]), "data": [list(r.values()) for r in ROWS]}}).encode(),
        WITH_ARRAY)),
    "mlflow dataframe_records": (WITH_ARRAY, "jsonl", lambda: serving(
        "mlflow", "/invocations", json.dumps({"dataframe_records": ROWS}).encode(),
        WITH_ARRAY)),
    "mlflow instances": (WITH_ARRAY, "jsonl", lambda: serving(
        "mlflow", "/invocations", json.dumps({"instances": ROWS}).encode(), WITH_ARRAY)),
    "mlflow inputs": (WITH_ARRAY, "jsonl", lambda: serving(
        "mlflow", "/invocations", json.dumps({"inputs": columns(ROWS)}).encode(), WITH_ARRAY)),
    "mlflow csv": (FLAT, "csv", lambda: serving(
        "mlflow", "/invocations", csv_body(flat_rows()), FLAT, content_type="text/csv")),
    "seldon ndarray": (WITH_ARRAY, "jsonl", lambda: serving(
        "seldon", "/api/v1.0/predictions", json.dumps({"data": {
            "names": list(ROWS[0]), "ndarray": [list(r.values()) for r in ROWS]}}).encode(),
        WITH_ARRAY)),
    "generic selector": (WITH_ARRAY, "jsonl", lambda: serving(
        "generic", "/score", json.dumps({"payload": {"records": ROWS}}).encode(), WITH_ARRAY,
        rows_selector="$.payload.records")),
}  # fmt: skip


def assert_same(train: FeatureBatch, serve: FeatureBatch) -> None:
    assert serve.n_rows == train.n_rows
    assert serve.numeric.keys() == train.numeric.keys()
    for name, values in train.numeric.items():
        np.testing.assert_array_equal(serve.numeric[name], values, err_msg=name)
    assert serve.categorical == train.categorical
    assert serve.issues == train.issues


@pytest.mark.parametrize("case", SERVING)
def test_serving_features_equal_training_features(tmp_path: Path, case: str) -> None:
    schema, fmt, serve = SERVING[case]
    rows = ROWS if schema is WITH_ARRAY else flat_rows()
    assert_same(training(tmp_path, schema, rows, fmt), serve())


def test_csv_and_json_lines_training_files_agree(tmp_path: Path) -> None:
    assert_same(
        training(tmp_path, FLAT, flat_rows(), "csv"),
        training(tmp_path, FLAT, flat_rows(), "jsonl"),
    )


def test_v2_tensor_rows_equal_training_arrays(tmp_path: Path) -> None:
    data = [v for row in TENSOR_ROWS for v in row]
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": data}]}
    ).encode()
    train = training(tmp_path, TENSOR, [{"x": row} for row in TENSOR_ROWS], "jsonl")
    assert_same(train, serving("v2", "/v2/models/m/infer", body, TENSOR))


def test_the_golden_rows_exercise_every_type_and_issue() -> None:
    # guards the test itself: a weaker ROWS would make the comparisons above vacuous
    batch = compute_features(WITH_ARRAY, ROWS, hash_key=KEY)
    assert {f.type for f in WITH_ARRAY.features} == {
        "numeric", "integer", "boolean", "categorical", "text", "array"
    }  # fmt: skip
    kinds = {code.split(":")[0] for code in batch.issue_masks}
    assert {"out_of_range", "unseen_category"} <= kinds
    assert np.isnan(batch.numeric["amount"]).sum() == 1
    assert batch.categorical["email_domain"][0] == batch.categorical["email_domain"][3]
    assert batch.categorical["email_domain"][0] != "a.org"  # hashed, never in clear
    assert batch.numeric["pixels.max"].tolist() == [255, 4, 9, 1]


# Cells where a fast CSV reader could part from the live path's csv module and
# `coerce_csv_cell`. Some a float parser reads too, but not as Python does (NaN
# spellings Python refuses, ints past 2**53, overflow); others it refuses (underscores,
# words, whitespace only). Also quotes, booleans in several spellings, many categories.
READ_AS_FLOATS = ["1e400", "NaN", "nan(1)", "-0", "9007199254740993", " 7", "inf", "-Infinity"]
REFUSED = ["", "  ", "1_000", '"3.5"', "x", "0.30000000000000004", "12e-3"]
TRICKY_COUNTS = ["3", "3.0", "1e1", "", "x", "12345678901234567890", "2.5"]
BOOLEANS = ["true", "false", "TRUE", "False", "1", "0", "", "yes", "1.0"]


# Numbers as categories (ids): a float cannot stand for 9007199254740993 there.
TRICKY = parse_schema(
    {"features": [*SCALAR_FEATURES, {"name": "zip", "type": "categorical", "nullable": True}]},
    "tricky.yaml",
)


def tricky_csv(n_rows: int, seed: int = 4) -> bytes:
    """Plain numbers first (later blocks then read them as numbers), then a few cells a
    float parser reads, then all kinds of tricky cells."""
    rng = random.Random(seed)
    lines = ["amount,count,member,country,email_domain,comment,zip"]
    for i in range(n_rows):
        part = 3 * i // n_rows
        amount, count = repr(rng.uniform(-10, 2000)), str(rng.randint(0, 12))
        zip_code = str(rng.randint(0, 99999))
        if part == 1 and rng.random() < 0.05:
            amount = zip_code = rng.choice(READ_AS_FLOATS)
        elif part == 2 and rng.random() < 0.2:
            amount = zip_code = rng.choice(READ_AS_FLOATS + REFUSED)
            count = rng.choice(TRICKY_COUNTS)
        country = rng.choice(["fr", "de", "us", f"k{rng.randint(0, 4000)}", '"fr,de"'])
        comment = rng.choice(["ok", "", '"two\nlines"', '"say ""hi"""', "  spaced  "])
        email = rng.choice(["a.org", "b.com", ""])
        member = rng.choice(BOOLEANS)
        lines.append(f"{amount},{count},{member},{country},{email},{comment},{zip_code}")
    return ("\n".join(lines) + "\n").encode()


def test_tricky_csv_cells_equal_the_live_csv_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = tricky_csv(3000)
    path = tmp_path / "train.csv"
    path.write_bytes(body)
    monkeypatch.setattr(readers, "_BLOCK_BYTES", 4096)  # many blocks, typed after the first
    tables = list(DataReader(path).chunks(700))
    assert len(tables) > 20
    live = serving("mlflow", "/invocations", body, TRICKY, content_type="text/csv")
    offset = 0
    for table in tables:
        train = compute_table_features(TRICKY, table, hash_key=KEY)
        rows = slice(offset, offset + table.n_rows)
        for name, values in train.numeric.items():
            np.testing.assert_array_equal(live.numeric[name][rows], values, err_msg=name)
        for name, texts in train.categorical.items():
            assert live.categorical[name][rows] == texts, name
        assert live.issues[rows] == train.issues
        offset += table.n_rows
    assert offset == live.n_rows == 3000
