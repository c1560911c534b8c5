"""A stats-service window: 1,000,000 rows x 20 numeric features read into a WindowSummary.

    .venv/bin/python benchmarks/stats_eval.py                     # SQLite, then noida-db
    .venv/bin/python benchmarks/stats_eval.py --rows 200000 --no-elasticsearch

SQLite: the rows of `benchmarks/sqlite_window.py` (20 numeric features, 2% missing, 2
categorical, a prediction) are written to a temporary database with its own code, a
baseline is built from training data of the same distribution, then windows of 100,000
rows and of every row are read with `open_window_reader` in a fresh child process each,
so that its peak RSS (VmHWM) is that read's alone.

Elasticsearch: the same rows go to a noida-db started here on 127.0.0.1, in bulk requests
of 10,000 records from two writers (about 2,000 records/s at first, slowing as the index
grows), then windows of 100,000 rows and of every row are read once each (--es-repeats):
the reader's peak RSS stays the same whatever the window (everything is aggregated in
the cluster; samples are capped at 10,000 rows). noida-db's data directory is kept in
`--cache` (default ~/.cache/mlmon/stats_eval) with a note of what was written: a second
run with the same --es-rows reuses the index and skips the ingest; delete the directory
to start over.

noida-db gets 250,000 rows, not 1M: its memory grows with the index, about 21 KB per
record (5.3 GB at 250,000; its peak RSS is printed after each window), and with 1M
records the kernel killed it at 24 GB on this 24 GB machine, in a window read and even
in a refresh of the reopened index. It also scans for every request and every range
bucket, so its read times (minutes) say nothing of Elasticsearch's; the reader's memory
is the point. With a real cluster (`--es-url` or ELASTICSEARCH_URL; index prefix
"stats-eval", kept for reuse) the default is the full 1M rows.

After each read, `evaluate(baseline, summary)` runs the statistics through
`stats_service.service.runner.evaluate_window` when that module can be imported, and says so
otherwise. MLMON_STORE and MLMON_SPOOL_DIR point into the temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import peak_rss_kib
from benchmarks.sqlite_window import (
    CATEGORICAL,
    MODEL,
    NUMERIC,
    ROWS_PER_SECOND,
    START_TS,
    VOCABULARIES,
    batches,
    write_throughput,
)
from exporter.records import StoreColumns
from exporter.schema import parse_schema
from stats_service.baseline.build import build_baseline, load_baseline, save_baseline
from stats_service.baseline.contents import Baseline
from stats_service.settings import WindowSpec
from stats_service.windows import open_window_reader
from stats_service.windows.summary import WindowSummary

ROOT = Path(__file__).resolve().parent.parent
ES_PREFIX = "stats-eval"
ES_BULK_DOCS = 10_000
TRAINING_ROWS = 50_000
CHILD_TIMEOUT_S = 3600.0  # noida-db reads take minutes
CACHE_FORMAT = 1  # bump when the generated rows change
NOIDA_START_TIMEOUT_S = 900.0
# noida-db needs ~21 KB of memory per indexed record: 1M records exhausted 24 GB here.
NOIDA_ROWS = 250_000


def schema_document() -> dict[str, Any]:
    features: list[dict[str, Any]] = [
        {"name": name, "type": "numeric", "nullable": True} for name in NUMERIC
    ]
    features += [{"name": name, "type": "categorical"} for name in CATEGORICAL]
    return {"model": MODEL, "features": features, "prediction": {"task": "regression"}}


def make_baseline(directory: Path) -> Path:
    """Training data drawn like the live rows (`sqlite_window.batches`), its baseline saved."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(TRAINING_ROWS, len(NUMERIC))) * 10.0
    values[rng.random(values.shape) < 0.02] = np.nan
    picks = [rng.integers(0, len(v), size=TRAINING_ROWS) for v in VOCABULARIES]
    predicted = (rng.random(TRAINING_ROWS) > 0.5).astype(float)
    data = directory / "train.csv"
    with data.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*NUMERIC, *CATEGORICAL, "value"])
        for i, row in enumerate(values.tolist()):
            categories = [v[p[i]] for v, p in zip(VOCABULARIES, picks, strict=True)]
            numbers = ["" if np.isnan(x) else f"{x:.6g}" for x in row]
            writer.writerow([*numbers, *categories, predicted[i]])
    schema = parse_schema(schema_document(), "stats_eval")
    baseline = build_baseline(schema, data, prediction_column="value")
    path = directory / "baseline.json"
    save_baseline(baseline, path)
    return path


def evaluate(baseline: Baseline, summary: WindowSummary) -> str:
    """The statistics over one window: the hook the evaluation plugs into."""
    try:
        from stats_service.service.runner import evaluate_window, prepare_model
        from stats_service.settings import load
    except ImportError as exc:
        return f"not run: stats_service.service.runner cannot be imported yet ({exc})"
    settings = load(environ={}, overrides={"baselines": {MODEL: "baseline.json"}})
    started = time.perf_counter()
    context = prepare_model(MODEL, baseline, "baseline.json", settings)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate_window(context, summary)
    evaluated = time.perf_counter() - started
    return (
        f"{result.status}, drift share {result.drift_share}; evaluate {evaluated:.2f} s "
        f"(+ {prepared:.2f} s preparing the model, once at start-up)"
    )


def child(store: str, baseline_path: Path, spec: WindowSpec, now: float, repeats: int) -> None:
    """Runs in a fresh process: prints one JSON line with the read's figures."""
    baseline = load_baseline(baseline_path)
    reader = open_window_reader(store, index_prefix=ES_PREFIX, request_timeout_s=3000.0)
    rss_before = peak_rss_kib()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        summary = reader.read(MODEL, spec, baseline, now)
        seconds.append(time.perf_counter() - started)
    rss_read = peak_rss_kib()
    evaluation = evaluate(baseline, summary)
    reader.close()
    figures = {
        "rows": summary.rows,
        "seconds": seconds,
        "rss_before_kib": rss_before,
        "rss_peak_kib": rss_read,
        "row_sample": list(summary.row_sample.shape),
        "labelled": summary.labelled.count,
        "evaluation": evaluation,
    }
    print(json.dumps(figures))


def measure(store: str, baseline: Path, spec: WindowSpec, now: float, repeats: int) -> None:
    window = {"duration_s": spec.duration_s, "rows": spec.rows, "name": spec.name}
    command = [
        sys.executable,
        __file__,
        "--child",
        json.dumps({"store": store, "baseline": str(baseline), "window": window, "now": now}),
        "--repeats",
        str(repeats),
    ]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=ROOT, timeout=CHILD_TIMEOUT_S
    )
    if result.returncode != 0:  # say why, and go on with the other windows
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {spec.name:>12} failed: {reason}")
        return
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    timings = ", ".join(f"{s:.2f}" for s in figures["seconds"])
    own = (figures["rss_peak_kib"] - figures["rss_before_kib"]) / 1024
    print(
        f"  {spec.name:>12} {figures['rows']:>9,} rows  read {min(figures['seconds']):6.2f} s "
        f"best ({timings})  peak RSS {figures['rss_peak_kib'] / 1024:7.1f} MB "
        f"({own:+.1f} MB over the {figures['rss_before_kib'] / 1024:.0f} MB of imports)"
    )
    print(f"  {'':>12} evaluate: {figures['evaluation']}")


def windows(rows: int, sizes: list[int]) -> tuple[float, list[WindowSpec]]:
    """`now` half a row after the last row; time windows of `sizes` rows (at most every
    row), then a count window of the smallest size."""
    now = START_TS + (rows - 0.5) / ROWS_PER_SECOND
    sizes = sorted({min(size, rows) for size in sizes})
    specs = [WindowSpec(f"{n // 1000}k rows", duration_s=n / ROWS_PER_SECOND) for n in sizes]
    specs.append(WindowSpec(f"last_{sizes[0]}", rows=sizes[0]))
    return now, specs


def run_sqlite(rows: int, baseline: Path, workdir: Path, repeats: int) -> None:
    db = workdir / "window.db"
    started = time.perf_counter()
    rate = write_throughput(db, rows, 1000)
    print(f"SQLite: {rows:,} rows written in {time.perf_counter() - started:.0f} s ({rate:,.0f}/s)")
    now, specs = windows(rows, [100_000, rows])
    for spec in specs:
        measure(f"sqlite:///{db}", baseline, spec, now, repeats)


def run_elasticsearch(
    rows: int, sizes: list[int], baseline: Path, cache: Path, repeats: int, url: str | None
) -> None:
    """Against the cluster at `url`, or a noida-db started on the cached data directory."""
    if url is not None:
        load(url, rows, None)
        read_windows(url, rows, sizes, baseline, repeats, None)
        return
    import tests.support.elasticsearch as noida
    from tests.support.elasticsearch import Noida, noida_binary

    # Reopening a data directory of many records takes noida-db longer than the tests' 30 s.
    noida.READY_TIMEOUT_S = NOIDA_START_TIMEOUT_S
    cache.mkdir(parents=True, exist_ok=True)
    server = Noida(noida_binary(), cache / "data")
    server.start()
    try:
        load(server.url, rows, cache / "ingested.json")
        read_windows(server.url, rows, sizes, baseline, repeats, server)
    finally:
        server.stop()


def load(url: str, rows: int, stamp: Path | None) -> None:
    """Ingest the rows unless the index holds them already (and, on noida-db, the stamp
    says they are this script's current rows)."""
    wanted = {"format": CACHE_FORMAT, "rows": rows}
    fresh = stamp is None or (stamp.exists() and json.loads(stamp.read_text()) == wanted)
    if fresh and stored_rows(url) == rows:
        print(f"{url}: {rows:,} rows reused" + (f" ({stamp.parent})" if stamp else ""))
        return
    if stamp is not None:
        stamp.unlink(missing_ok=True)
    started = time.perf_counter()
    ingest(url, rows)
    stored = stored_rows(url)
    seconds = time.perf_counter() - started
    print(f"{url}: {stored:,} rows written in {seconds:.0f} s ({stored / seconds:,.0f}/s)")
    if stored != rows:
        raise RuntimeError(f"the index holds {stored:,} rows, expected {rows:,}")
    if stamp is not None:
        stamp.write_text(json.dumps(wanted))


def read_windows(
    url: str, rows: int, sizes: list[int], baseline: Path, repeats: int, server: Any
) -> None:
    now, specs = windows(rows, sizes)
    for spec in specs:
        measure(url, baseline, spec, now, repeats)
        if server is not None:
            print(f"  {'':>12} noida-db peak RSS so far: {server_peak_mib(server):,.0f} MB")


def server_peak_mib(server: Any) -> float:
    """The noida-db process's peak RSS (VmHWM): the window's weight lands there."""
    process = server._process  # tests.support's Noida keeps its Popen private
    status = Path(f"/proc/{process.pid}/status").read_text(encoding="ascii")
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def ingest(url: str, rows: int) -> None:
    """Bulk requests of ES_BULK_DOCS records from two writers: one builds and encodes the
    next request while the server indexes the last (a third faster than one writer)."""
    from exporter.store.elasticsearch.log import ElasticsearchLog

    logs = [
        ElasticsearchLog.from_url(
            url,
            index_prefix=ES_PREFIX,
            retention_days=0,  # the rows are from 2023: never purge them
            bulk_max_docs=ES_BULK_DOCS,
            bulk_max_bytes=64 * 1024 * 1024,
            request_timeout_s=300.0,
            retry_budget_s=300.0,  # a bulk request's time limit is the smaller of both
        )
        for _ in range(2)
    ]
    for log in logs:
        log.prepare(StoreColumns(MODEL, NUMERIC, CATEGORICAL))
    started = time.perf_counter()
    with ThreadPoolExecutor(len(logs)) as pool:
        pending: list[Future[None]] = []
        for n, batch in enumerate(batches(rows, ES_BULK_DOCS)):
            pending.append(pool.submit(logs[n % len(logs)].write, batch))
            if len(pending) > len(logs):  # bounded: a few batches in memory at a time
                pending.pop(0).result()
            if (n + 1) % 20 == 0:
                done = (n + 1) * ES_BULK_DOCS
                rate = done / (time.perf_counter() - started)
                print(f"  ingest {done:,}/{rows:,} ({rate:,.0f}/s)", flush=True)
        for future in pending:
            future.result()
    for log in logs:
        log.close()


def stored_rows(url: str) -> int:
    """Records in the index after a refresh (which takes a while after a large ingest)."""
    from exporter.store.elasticsearch.config import config_from_url, make_client

    client = make_client(config_from_url(url, request_timeout_s=600.0))
    try:
        index = f"{ES_PREFIX}-{MODEL}"
        if not client.indices.exists(index=index):
            return 0
        client.indices.refresh(index=index)
        return int(client.count(index=index).body["count"])
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="SQLite reads timed per window")
    parser.add_argument(
        "--es-url",
        default=os.environ.get("ELASTICSEARCH_URL"),
        help="a real cluster instead of noida-db (default: $ELASTICSEARCH_URL)",
    )
    parser.add_argument(
        "--es-rows", type=int, help="rows to index (default: 250,000 on noida-db, else --rows)"
    )
    parser.add_argument("--es-repeats", type=int, default=1, help="reads per window")
    parser.add_argument(
        "--es-windows",
        default="100000,1000000",
        help="window sizes in rows, comma-separated (capped at --es-rows)",
    )
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-elasticsearch", action="store_true")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--cache", type=Path, default=default_cache / "mlmon" / "stats_eval")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        spec = WindowSpec(**job["window"])
        child(job["store"], Path(job["baseline"]), spec, job["now"], args.repeats)
        return 0
    # On `timeout` or Ctrl-C alike, unwind: the noida-db server and the temporary
    # directory are cleaned up by their `finally` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="mlmon-stats-eval-") as tmp:
        workdir = Path(tmp)
        os.environ["MLMON_STORE"] = f"sqlite:///{workdir / 'unused.db'}"
        os.environ["MLMON_SPOOL_DIR"] = str(workdir / "spool")
        started = time.perf_counter()
        baseline = make_baseline(workdir)
        print(
            f"baseline: {TRAINING_ROWS:,} training rows, {len(NUMERIC)} numeric + "
            f"{len(CATEGORICAL)} categorical features ({time.perf_counter() - started:.1f} s)"
        )
        if not args.no_sqlite:
            run_sqlite(args.rows, baseline, workdir, args.repeats)
        if not args.no_elasticsearch:
            rows = args.es_rows or (args.rows if args.es_url else NOIDA_ROWS)
            sizes = [int(size) for size in args.es_windows.split(",")]
            run_elasticsearch(rows, sizes, baseline, args.cache, args.es_repeats, args.es_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
