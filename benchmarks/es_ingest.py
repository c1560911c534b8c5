"""The Elasticsearch input log against noida-db (started here, on 127.0.0.1).

1. Write throughput: records/s through `ElasticsearchLog.write` at 1, 100 and 1000
   records per call (20 numeric and 2 categorical features per record; 2,000, 20,000
   and 50,000 records), then checked against the index's count.
2. Window reads: `aggregate_window` (20 numeric features x 10 bins, 2 categorical, a
   sample of 1000 rows) over windows of growing size; peak Python memory (tracemalloc)
   and time per read. Aggregations run in the engine, so memory should not grow with
   the window.

    python benchmarks/es_ingest.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.records import LogRecord, StoreColumns
from exporter.store.elasticsearch.log import ElasticsearchLog
from exporter.store.elasticsearch.read import ElasticsearchReader
from tests.support.elasticsearch import Noida, noida_binary, noida_server

NUMERIC = tuple(f"n{i}" for i in range(20))
CATEGORICAL = ("colour", "city")
COLUMNS = StoreColumns("bench", numeric=NUMERIC, categorical=CATEGORICAL)
START = float(int(time.time()) - 86400)


def records(first: int, count: int, rng: np.random.Generator) -> list[LogRecord]:
    values = rng.normal(size=(count, len(NUMERIC))).round(4).tolist()
    return [
        LogRecord(
            id=f"b-{first + i}:0",
            timestamp=START + (first + i) * 0.01,
            request_id=f"b-{first + i}",
            row=0,
            model="bench",
            model_version="1",
            protocol="v2",
            status=200,
            latency_ms=3.0,
            features={
                **dict(zip(NUMERIC, values[i], strict=True)),
                "colour": ("red", "green", "blue")[(first + i) % 3],
                "city": f"city-{(first + i) % 40}",
            },
        )
        for i in range(count)
    ]


def ingest(server: Noida) -> None:
    print("write: 20 numeric + 2 categorical features per record, records built beforehand")
    print(f"{'records/call':>12} {'records':>9} {'records/s':>10} {'stored':>9}")
    rng = np.random.default_rng(1)
    for batch, total in ((1, 2000), (100, 20_000), (1000, 50_000)):
        prefix = f"bench-ingest-{batch}"
        log = ElasticsearchLog.from_url(server.url, index_prefix=prefix, retention_days=0)
        log.prepare(COLUMNS)
        pending = records(0, total, rng)
        started = time.perf_counter()
        for first in range(0, total, batch):
            log.write(pending[first : first + batch])
        rate = total / (time.perf_counter() - started)
        log.close()
        stored = server.count(f"{prefix}-bench")
        print(f"{batch:12d} {total:9d} {rate:10.0f} {stored:9d}")


def windows(server: Noida, rows: int) -> None:
    prefix = "bench-windows"
    log = ElasticsearchLog.from_url(server.url, index_prefix=prefix, retention_days=0)
    log.prepare(COLUMNS)
    rng = np.random.default_rng(2)
    loaded = time.perf_counter()
    for first in range(0, rows, 5000):
        log.write(records(first, min(5000, rows - first), rng))
    log.close()
    server.count(f"{prefix}-bench")
    load_s = time.perf_counter() - loaded
    print(f"\nwindow reads over {rows} stored records (written in {load_s:.0f} s)")
    print(f"{'window rows':>11} {'read s':>7} {'peak MiB':>9} {'sampled':>8}")
    edges = {name: [-np.inf, *np.linspace(-2, 2, 9).tolist(), np.inf] for name in NUMERIC}
    reader = ElasticsearchReader.from_url(server.url, index_prefix=prefix, request_timeout_s=120)
    sizes = sorted({size for size in (1000, 10_000, rows // 2, rows) if size <= rows})
    for size in sizes:
        end = START + rows * 0.01
        tracemalloc.start()
        started = time.perf_counter()
        window = reader.aggregate_window(
            "bench", end - size * 0.01, end, edges, list(CATEGORICAL), sample_size=1000
        )
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert window.rows == size, (window.rows, size)
        print(f"{size:11d} {elapsed:7.2f} {peak / 2**20:9.2f} {len(window.sample):8d}")
    reader.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    try:
        noida_binary()
    except pytest.skip.Exception as exc:
        print(f"es_ingest: {exc.msg}; pip install noida-db", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as workdir, noida_server(Path(workdir)) as server:
        ingest(server)
        windows(server, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
