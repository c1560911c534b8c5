"""SQLite input log: write throughput, and the window read the stats service does.

    .venv/bin/python benchmarks/sqlite_window.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/sqlite_window.py --rows 200000

Writes rows of 20 numeric features (2% missing) and 2 categoricals to a temporary
database with `SqliteLog.write` in batches of 1,000, then reads the whole window with
`read_window` in a fresh child process, so that its peak RSS (VmHWM) is the read's
alone; the interpreter and the imports account for the first ~35 MB. Then the write
throughput at 1, 100 and 1,000 records per call, each on a fresh database
(`write_throughput` is what other benchmarks import). Timings count `write` calls only,
not making the records.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import peak_rss_kib
from exporter.records import LogRecord, PredictionValue, StoreColumns
from exporter.store.sqlite.log import SqliteLog

ROOT = Path(__file__).resolve().parent.parent
MODEL = "benchmark"
NUMERIC = tuple(f"x{i}" for i in range(20))
CATEGORICAL = ("country", "channel")
VOCABULARIES = (["fr", "de", "es", "it", "nl", "pl"], ["web", "app", "store"])
START_TS = 1_700_000_000.0
ROWS_PER_SECOND = 300.0  # timestamps: a busy model, 1M rows span about an hour


def batches(rows: int, batch_size: int, seed: int = 7) -> Iterator[list[LogRecord]]:
    rng = np.random.default_rng(seed)
    for start in range(0, rows, batch_size):
        n = min(batch_size, rows - start)
        values = rng.normal(size=(n, len(NUMERIC))) * 10.0
        values[rng.random(values.shape) < 0.02] = np.nan
        picks = [rng.integers(0, len(v), size=n).tolist() for v in VOCABULARIES]
        scores = rng.random(n).tolist()
        batch = []
        for i, row in enumerate(values.tolist()):
            features: dict[str, float | str | None] = {
                name: None if math.isnan(v) else v for name, v in zip(NUMERIC, row, strict=True)
            }
            for name, vocabulary, pick in zip(CATEGORICAL, VOCABULARIES, picks, strict=True):
                features[name] = vocabulary[pick[i]]
            number = start + i
            batch.append(
                LogRecord(
                    id=f"req-{number}:0",
                    timestamp=START_TS + number / ROWS_PER_SECOND,
                    request_id=f"req-{number}",
                    row=0,
                    model=MODEL,
                    model_version="1",
                    protocol="v2",
                    status=200,
                    latency_ms=3.0,
                    features=features,
                    prediction=PredictionValue(value=float(scores[i] > 0.5), score=scores[i]),
                )
            )
        yield batch


def write_throughput(path: Path, rows: int, batch_size: int) -> float:
    """Records per second through `SqliteLog.write` at one batch size, on `path`."""
    with SqliteLog(path) as log:
        log.prepare(StoreColumns(MODEL, NUMERIC, CATEGORICAL))
        seconds = 0.0
        for batch in batches(rows, batch_size):
            started = time.perf_counter()
            log.write(batch)
            seconds += time.perf_counter() - started
    return rows / seconds


def child(path: Path, repeats: int) -> None:
    """Runs in a fresh process: prints one JSON line with the read's figures."""
    rss_before = peak_rss_kib()
    seconds: list[float] = []
    with SqliteLog(path) as log:
        for _ in range(repeats):
            started = time.perf_counter()
            window = log.read_window(MODEL, -math.inf, math.inf)
            seconds.append(time.perf_counter() - started)
            rows, shape = window.count, window.numeric.shape
            del window
        started = time.perf_counter()
        counted = log.count_window(MODEL, -math.inf, math.inf)
        count_seconds = time.perf_counter() - started
    figures = {
        "rows": rows,
        "shape": list(shape),
        "counted": counted,
        "seconds": seconds,
        "count_seconds": count_seconds,
        "rss_before_kib": rss_before,
        "rss_peak_kib": peak_rss_kib(),
    }
    print(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="window reads to time")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats)
        return 0
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        db = Path(tmp) / "window.db"
        rate = write_throughput(db, args.rows, 1000)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"rows            {args.rows:,} x 20 numeric + 2 categorical features")
        print(f"write           {rate:,.0f} records/s (batches of 1,000)")
        print(f"file            {size / 1e6:,.1f} MB ({size / args.rows:,.0f} bytes per row)")
        command = [sys.executable, __file__, "--child", str(db), "--repeats", str(args.repeats)]
        result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        timings = ", ".join(f"{s:.2f}" for s in figures["seconds"])
        print(f"read_window     {figures['rows']:,} rows -> numeric {figures['shape']}")
        print(f"read time       {min(figures['seconds']):.2f} s best ({timings} s)")
        print(f"peak RSS        {figures['rss_peak_kib'] / 1024:,.1f} MB")
        print(f"RSS at start    {figures['rss_before_kib'] / 1024:,.1f} MB (interpreter + imports)")
        print(f"count_window    {figures['count_seconds'] * 1000:.1f} ms")
    for batch_size, rows in ((1, 5_000), (100, 50_000), (1000, 100_000)):
        with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
            rate = write_throughput(Path(tmp) / "write.db", rows, batch_size)
        print(f"write, {batch_size:>4} per call  {rate:>10,.0f} records/s ({rows:,} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
