"""Baseline build throughput and peak memory on a generated CSV.

    .venv/bin/python benchmarks/baseline_build.py --rows 1000000
    .venv/bin/python benchmarks/baseline_build.py --data train.csv --schema schema.yaml

The CSV has 20 features: 9 decimals (2-6 places), 6 integers, 5 categoricals, 2% blank
cells in 8 of them. `--float-format repr` writes full 17-digit floats instead, which
leave the vectorised decoder for Python's float() (see stats_service/baseline/csv_fast.py).
The build runs in a fresh child process so its peak RSS is the build's alone: VmHWM
from /proc/self/status on Linux (ru_maxrss would also count the parent's memory, which
Linux carries over a fork and exec), ru_maxrss elsewhere. The interpreter and the
imports account for the first ~40 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import peak_rss_kib  # noqa: E402

N_DECIMAL, N_INTEGER, N_CATEGORICAL = 9, 6, 5
CATEGORIES = [[f"c{k}_{v}" for v in range(4 + 4 * k)] for k in range(N_CATEGORICAL)]
BLOCK_ROWS = 100_000


def schema_document() -> dict[str, Any]:
    features: list[dict[str, Any]] = []
    for i in range(N_DECIMAL):
        features.append({"name": f"x{i}", "type": "numeric", "nullable": i % 2 == 0})
    for i in range(N_INTEGER):
        features.append({"name": f"n{i}", "type": "integer", "range": [0, 1000]})
    for k in range(N_CATEGORICAL):
        features.append({"name": f"c{k}", "type": "categorical", "categories": CATEGORIES[k]})
    return {"model": "benchmark", "features": features}


def generate(path: Path, rows: int, float_format: str, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    names = [feature["name"] for feature in schema_document()["features"]]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(names) + "\n")
        for start in range(0, rows, BLOCK_ROWS):
            n = min(BLOCK_ROWS, rows - start)
            columns: list[list[str]] = []
            for i in range(N_DECIMAL):
                values = (rng.normal(size=n) * 10 ** (i % 4)).tolist()
                places = 2 + i % 5
                if float_format == "repr":
                    columns.append([repr(v) for v in values])
                else:
                    columns.append([f"{v:.{places}f}" for v in values])
            for _ in range(N_INTEGER):
                columns.append([str(v) for v in rng.integers(0, 1001, size=n).tolist()])
            for k in range(N_CATEGORICAL):
                picks = rng.integers(0, len(CATEGORIES[k]), size=n).tolist()
                columns.append([CATEGORIES[k][p] for p in picks])
            for j in range(0, len(columns), 2):  # blanks in every other column
                for row in np.flatnonzero(rng.random(n) < 0.02).tolist():
                    columns[j][row] = ""
            out.write("\n".join(map(",".join, zip(*columns, strict=True))) + "\n")


def child(data: Path, schema_path: Path, chunk_rows: int) -> None:
    """Runs in a fresh process: prints one JSON line with the build's figures."""
    from exporter.schema import load_schema
    from stats_service.baseline.build import build_baseline

    schema = load_schema(schema_path)
    rss_before = peak_rss_kib()
    started = time.perf_counter()
    baseline = build_baseline(schema, data, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - started
    rss_peak = peak_rss_kib()
    print(
        json.dumps(
            {
                "rows": baseline.data.rows,
                "seconds": seconds,
                "rss_before_kib": rss_before,
                "rss_peak_kib": rss_peak,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="reuse this CSV instead of generating one")
    parser.add_argument("--schema", type=Path, help="schema for --data (default: generated)")
    parser.add_argument("--float-format", choices=("fixed", "repr"), default="fixed")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.data, args.schema, args.chunk_rows)
        return 0
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        schema_path = args.schema or Path(tmp) / "schema.yaml"
        if args.schema is None:
            schema_path.write_text(yaml.safe_dump(schema_document()), encoding="utf-8")
        data = args.data
        if data is None:
            data = Path(tmp) / "train.csv"
            print(f"generating {args.rows:,} rows x 20 features ...", file=sys.stderr)
            generate(data, args.rows, args.float_format)
        command = [sys.executable, __file__, "--child", "--data", str(data)]
        command += ["--schema", str(schema_path), "--chunk-rows", str(args.chunk_rows)]
        result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        size_mb = data.stat().st_size / 1e6
    rows, seconds = figures["rows"], figures["seconds"]
    print(f"file            {size_mb:,.1f} MB, {rows:,} rows x 20 features ({args.float_format})")
    print(f"build time      {seconds:.2f} s")
    print(f"throughput      {rows / seconds:,.0f} rows/s")
    print(f"peak RSS        {figures['rss_peak_kib'] / 1024:,.1f} MB")
    print(f"RSS at start    {figures['rss_before_kib'] / 1024:,.1f} MB (interpreter + imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
