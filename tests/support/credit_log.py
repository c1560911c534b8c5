"""A small two-feature model ("credit": age, country), its baseline and its input log,
for stats-service tests that need real records without running a sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporter.records import LogRecord, PredictionValue, StoreColumns
from exporter.schema import parse_schema
from exporter.store.sqlite.log import SqliteLog
from stats_service.baseline.build import build_baseline, save_baseline

SCHEMA = {
    "model": "credit",
    "features": [
        {"name": "age", "type": "numeric"},
        {"name": "country", "type": "categorical"},
    ],
}
NOW = 1_800_000_000.0


def rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[tuple[float, str]]:
    ages = rng.normal(40 + shift, 10, n)
    countries = rng.choice(["fr", "de", "us"], n, p=[0.5, 0.3, 0.2])
    return list(zip(ages.tolist(), countries.tolist(), strict=True))


def write_baseline(directory: Path) -> Path:
    """Built from 10,000 training rows, the prediction (age / 100) included."""
    training = directory / "train.csv"
    data = rows(np.random.default_rng(1), 10_000)
    training.write_text(
        "age,country,prediction\n" + "".join(f"{a},{c},{a / 100}\n" for a, c in data)
    )
    baseline = build_baseline(
        parse_schema(SCHEMA, "schema"), training, prediction_column="prediction"
    )
    path = directory / "baseline.json"
    save_baseline(baseline, path)
    return path


def log(db: Path, data: list[tuple[float, str]], start: int = 0, now: float = NOW) -> None:
    """One record per row, 0.1 s apart, in the 10 minutes before `now`."""
    with SqliteLog(db) as store:
        store.prepare(StoreColumns("credit", numeric=("age",), categorical=("country",)))
        store.write(
            [
                LogRecord(
                    id=f"r{start + i}:0",
                    timestamp=now - 600 + (start + i) * 0.1,
                    request_id=f"r{start + i}",
                    row=0,
                    model="credit",
                    model_version="1",
                    protocol="v2",
                    status=200,
                    latency_ms=1.0,
                    features={"age": age, "country": country},
                    prediction=PredictionValue(value=age / 100),
                )
                for i, (age, country) in enumerate(data)
            ]
        )
