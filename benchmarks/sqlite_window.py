"""SQLite input log: the window the stats service reads, summarises and evaluates, and
write throughput.

    .venv/bin/python benchmarks/sqlite_window.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/sqlite_window.py --rows 200000 --no-anchor --no-write

Writes rows of 20 numeric features (2% missing) and 2 categoricals with `SqliteLog.write`
in batches of 1,000 into `--cache` (default ~/.cache/mlmon/sqlite_window), once: a second
run with the same --rows reuses the file (a note beside it says which rows and store
format it holds; delete the directory to start over). A baseline is built from training
data of the same distribution (`stats_eval.make_baseline`). Then, in a fresh child process
each, so that its peak RSS (VmHWM) is that window's alone, the whole window is read with
`read_window`, summarised with `summarize_window` and evaluated with `evaluate_window`
(the model prepared once before, not timed): with this tree's code and with the code of
`--anchor` (a git revision, default HEAD, extracted with `git archive`), so the figures
compare like with like on a machine whose load changes; `--no-anchor` skips it. Each
step's wall time and CPU time are printed (best of --repeats): where other work shares
the cores, CPU time is what the step costs. The largest difference between the two
runs' scores and p-values is printed: they must agree. The peak RSS includes the ~170 MB
the child holds before the first read (imports, baseline, prepared model). Then the
write throughput at 1, 100 and 1,000 records per call, each on a fresh database
(`write_throughput` is what other benchmarks import; `--no-write` skips it). Timings
count `write` calls only, not making the records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import extract, peak_rss_kib
from exporter.records import LogRecord, PredictionValue, StoreColumns
from exporter.store.sqlite.format import FORMAT_VERSION, SCHEMA
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


CACHE_FORMAT = 1  # bump when the generated rows change
CHILD_TIMEOUT_S = 600.0
ANCHOR = "468bba5"  # the commit before the aggregated chunk read: the previous implementation
STEPS = ("read", "summarise", "evaluate")


def child(path: Path, baseline_path: Path, repeats: int, code: Path | None) -> None:
    """Runs in a fresh process: prints one JSON line with the window's figures. `code`: a
    tree whose exporter and stats_service packages are imported instead of this one's."""
    if code is not None:
        sys.path.insert(0, str(code))
        for name in [m for m in sys.modules if m.split(".")[0] in ("exporter", "stats_service")]:
            del sys.modules[name]  # the header's imports came from this tree
    try:  # what `mlmon-stats serve` does first, where the code has it
        from stats_service.service.memory import return_freed_memory
    except ImportError:
        pass
    else:
        return_freed_memory()
    from exporter.store.sqlite.read import read_window
    from stats_service.baseline.files import load_baseline
    from stats_service.service.runner import evaluate_window, prepare_model
    from stats_service.settings import load
    from stats_service.windows.sqlite import summarize_window

    baseline = load_baseline(baseline_path)
    settings = load(environ={}, overrides={"baselines": {MODEL: str(baseline_path)}})
    context = prepare_model(MODEL, baseline, str(baseline_path), settings)
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    rss_before = peak_rss_kib()
    # Wall and CPU seconds per step: on a machine shared with other work, CPU time is
    # what the step costs, wall time what it took.
    timings: dict[str, list[float]] = {}
    for _ in range(repeats):
        marks = [(time.perf_counter(), time.process_time())]
        window = read_window(connection, MODEL, -math.inf, math.inf)
        marks.append((time.perf_counter(), time.process_time()))
        summary = summarize_window(window, baseline, "all", START_TS, math.inf)
        rows, shape = window.count, window.numeric.shape
        del window
        marks.append((time.perf_counter(), time.process_time()))
        result = evaluate_window(context, summary)
        del summary
        marks.append((time.perf_counter(), time.process_time()))
        for step, before, after in zip(STEPS, marks, marks[1:], strict=False):
            timings.setdefault(step, []).append(after[0] - before[0])
            timings.setdefault(f"{step} cpu", []).append(after[1] - before[1])
    connection.close()
    scores = {
        f"{drift.feature} {method.method} {what}": value
        for drift in result.features
        for method in drift.methods
        for what, value in (("score", method.score), ("pvalue", method.pvalue))
        if value is not None
    }
    figures = {
        "rows": rows,
        "shape": list(shape),
        "timings": timings,
        "status": result.status,
        "drift_share": result.drift_share,
        "scores": scores,
        "rss_before_kib": rss_before,
        "rss_peak_kib": peak_rss_kib(),
    }
    print(json.dumps(figures))


def cached_log(cache: Path, rows: int) -> Path:
    """The database of `rows` rows in `cache`, written first unless its note matches."""
    db, note = cache / f"window-{rows}.db", cache / f"window-{rows}.json"
    # The tables and indexes too: a covering index that lacks a column read makes every
    # row a table lookup, and its definition can change within one FORMAT_VERSION.
    tables = hashlib.sha256("\n".join(SCHEMA).encode()).hexdigest()[:16]
    wanted = {"format": CACHE_FORMAT, "store": FORMAT_VERSION, "tables": tables, "rows": rows}
    if db.exists() and note.exists() and json.loads(note.read_text()) == wanted:
        print(f"rows            {rows:,} reused ({db})")
        return db
    cache.mkdir(parents=True, exist_ok=True)
    note.unlink(missing_ok=True)
    for stale in cache.glob(f"window-{rows}.db*"):
        stale.unlink()
    rate = write_throughput(db, rows, 1000)
    print(f"rows            {rows:,} x 20 numeric + 2 categorical features")
    print(f"write           {rate:,.0f} records/s (batches of 1,000)")
    size = db.stat().st_size
    print(f"file            {size / 1e6:,.1f} MB ({size / rows:,.0f} bytes per row)")
    note.write_text(json.dumps(wanted))
    return db


def run_window(db: Path, baseline: Path, repeats: int, anchor: str | None, tmp: Path) -> None:
    command = [sys.executable, __file__, "--child", str(db), "--baseline", str(baseline)]
    command += ["--repeats", str(repeats)]
    runs = {"this tree": command}
    if anchor is not None:
        code = tmp / "anchor"
        extract(anchor, code)
        runs[f"anchor {anchor}"] = [*command, "--code", str(code)]
    figures = {name: run_child(run) for name, run in runs.items()}
    ours = figures["this tree"]
    print(f"window          {ours['rows']:,} rows -> numeric {ours['shape']}, {ours['status']}")
    columns = f"{'read s':>8}{'summarise s':>13}{'evaluate s':>12}{'total s':>9}"
    print(f"{'':16}{columns}{'peak RSS MB':>13}")
    for name, run in figures.items():
        for kind in ("", " cpu"):
            best = [min(run["timings"][step + kind]) for step in STEPS]
            label = name if not kind else "  CPU time"
            rss = f"{run['rss_peak_kib'] / 1024:13,.1f}" if not kind else ""
            print(f"{label:16}{best[0]:8.2f}{best[1]:13.2f}{best[2]:12.2f}{sum(best):9.2f}{rss}")
    start = ours["rss_before_kib"] / 1024
    print(f"{'':16}best of {repeats}; RSS at start {start:.0f} MB (imports, baseline, model)")
    if len(figures) == 2:
        theirs = figures[f"anchor {anchor}"]
        keys = ours["scores"].keys() | theirs["scores"].keys()
        differ = max(
            (
                abs(ours["scores"].get(k, math.nan) - theirs["scores"].get(k, math.nan))
                for k in keys
            ),
            default=0.0,
        )
        print(f"statistics      {len(keys)} scores and p-values, largest difference {differ:.3g}")


def run_child(command: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=ROOT, timeout=CHILD_TIMEOUT_S
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="windows to time")
    parser.add_argument("--anchor", default=ANCHOR, help="git revision to compare with")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="skip the write throughput")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--cache", type=Path, default=default_cache / "mlmon" / "sqlite_window")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.baseline, args.repeats, args.code)
        return 0
    from benchmarks.stats_eval import make_baseline

    db = cached_log(args.cache, args.rows)
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        baseline = make_baseline(Path(tmp))
        run_window(db, baseline, args.repeats, None if args.no_anchor else args.anchor, Path(tmp))
    if args.no_write:
        return 0
    for batch_size, rows in ((1, 5_000), (100, 50_000), (1000, 100_000)):
        with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
            rate = write_throughput(Path(tmp) / "write.db", rows, batch_size)
        print(f"write, {batch_size:>4} per call  {rate:>10,.0f} records/s ({rows:,} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
