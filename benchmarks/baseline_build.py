"""Baseline build throughput and peak memory on a generated CSV.

    .venv/bin/python benchmarks/baseline_build.py --rows 1000000
    .venv/bin/python benchmarks/baseline_build.py --data train.csv --schema schema.yaml

The CSV has 20 features: 9 decimals, 6 integers, 5 categoricals, 2% blank cells in 8 of
them. Decimals are written as `pandas.DataFrame.to_csv` writes floats by default, repr()
(up to 17 significant digits); `--float-format fixed` writes 2-6 places instead.
The same build runs twice in the same run: with this tree's code, and with the code of
`--anchor` (a git revision, default the commit before the pyarrow reader; extracted with
`git archive` into a temporary directory), so the figures compare like with like on a
machine whose load changes; `--no-anchor` skips it.
CPU s: the build's processor time, every thread (the reader's and Arrow's too); on a
machine others share, it moves less than the elapsed time.
Each build runs in a fresh child process so its peak RSS is the build's alone: VmHWM
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

from benchmarks.measure import extract, peak_rss_kib  # noqa: E402

N_DECIMAL, N_INTEGER, N_CATEGORICAL = 9, 6, 5
CATEGORIES = [[f"c{k}_{v}" for v in range(4 + 4 * k)] for k in range(N_CATEGORICAL)]
BLOCK_ROWS = 100_000
# The commit before the pyarrow CSV reader: the previous implementation, as the anchor.
ANCHOR = "eb3602d"


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


def child(data: Path, schema_path: Path, chunk_rows: int, code: Path | None) -> None:
    """Runs in a fresh process: prints one JSON line with the build's figures. `code`: a
    tree whose exporter and stats_service packages are imported instead of this one's."""
    if code is not None:
        sys.path.insert(0, str(code))
    from exporter.schema import load_schema
    from stats_service.baseline.build import build_baseline

    schema = load_schema(schema_path)
    rss_before = peak_rss_kib()
    started, cpu_started = time.perf_counter(), time.process_time()
    baseline = build_baseline(schema, data, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    rss_peak = peak_rss_kib()
    print(
        json.dumps(
            {
                "rows": baseline.data.rows,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
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
    parser.add_argument("--float-format", choices=("fixed", "repr"), default="repr")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--anchor", default=ANCHOR, help="git revision to compare with")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.data, args.schema, args.chunk_rows, args.code)
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
        builds = {"this tree": command}
        if not args.no_anchor:
            anchor = Path(tmp) / "anchor"
            extract(args.anchor, anchor)
            builds[f"anchor {args.anchor}"] = [*command, "--code", str(anchor)]
        figures = {
            name: json.loads(
                subprocess.run(
                    build, check=True, capture_output=True, text=True, cwd=ROOT
                ).stdout.splitlines()[-1]
            )
            for name, build in builds.items()
        }
        size_mb = data.stat().st_size / 1e6
    rows = figures["this tree"]["rows"]
    print(f"file            {size_mb:,.1f} MB, {rows:,} rows x 20 features ({args.float_format})")
    print(
        f"{'':16}{'build s':>9}{'rows/s':>11}{'CPU s':>8}{'peak RSS MB':>13}{'RSS at start MB':>17}"
    )
    for name, build in figures.items():
        print(
            f"{name:16}{build['seconds']:9.2f}{build['rows'] / build['seconds']:11,.0f}"
            f"{build['cpu_seconds']:8.2f}{build['rss_peak_kib'] / 1024:13,.1f}"
            f"{build['rss_before_kib'] / 1024:17,.1f}"
        )
    if len(figures) == 2:
        ours, theirs = figures.values()
        print(f"speed-up        {theirs['seconds'] / ours['seconds']:.2f}x over the anchor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
