"""Input-log ingest through a live sidecar, and its memory while the store is down.

1. Records per second from requests of 1, 100 and 1000 rows until every record is in
   the store: SQLite, and the Elasticsearch-compatible engine (noida-db) when present.
2. Peak RSS of the sidecar (all its processes) while the SQLite store is locked for
   --down-seconds under steady load: it must stay bounded by the configured queue and
   spool, whatever the outage length.

    python benchmarks/log_ingest.py [--seconds 10] [--down-seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.processes import VENV_BIN, free_port, running
from tests.support.scrape import scrape, value
from tests.support.stores import sqlite_locked

HERE = Path(__file__).resolve().parent
SCHEMA = "model: bench\nfeatures:\n" + "".join(
    f"  - {{name: f{i}, type: numeric}}\n" for i in range(20)
)


def payload(rows: int) -> bytes:
    instances = [{f"f{i}": float(r * 20 + i) for i in range(20)} for r in range(rows)]
    return json.dumps({"instances": instances}).encode()


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) != pid and int(stat[1]) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


def drive(url: str, body: bytes, seconds: float, clients: int = 4,
          rate_per_client: float | None = None) -> int:  # fmt: skip
    """Send requests for `seconds`; returns how many got 200."""
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        while time.monotonic() < deadline:
            connection.request("POST", "/v1/models/bench:predict", body,
                               {"content-type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                done[index] += 1
            if rate_per_client:
                time.sleep(1 / rate_per_client)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


@contextmanager
def sidecar_on(upstream_port: int, workdir: Path, store: str) -> Iterator[tuple[str, int]]:
    schema = workdir / "schema.yaml"
    schema.write_text(SCHEMA)
    port = free_port()
    env = {"MLMON_STORE": store, "MLMON_SPOOL_DIR": str(workdir / f"spool-{port}"),
           "MLMON_SPOOL_MAX_BYTES": str(256 << 20)}  # fmt: skip
    with running(
        [str(VENV_BIN / "mlmon-exporter"), "--upstream", f"http://127.0.0.1:{upstream_port}",
         "--port", str(port), "--schema", str(schema)],
        ready_url=f"http://127.0.0.1:{port}/healthz", env=env,
    ) as process:  # fmt: skip
        yield f"http://127.0.0.1:{port}", process.pid


def ingest(url: str, rows: int, seconds: float, count: Callable[[], int]) -> tuple[float, int]:
    """(records/s the sidecar logged under overload, exchanges dropped at the hand-over).

    The clients send as fast as they can: past what the analysis process sustains, the
    bounded hand-over drops exchanges (counted, never slowing the clients). The rate is
    what reached the store, up to when the store count stops growing."""
    before = count()
    started_at = time.monotonic()
    drive(url, payload(rows), seconds)
    last, last_change = count(), time.monotonic()
    while time.monotonic() - last_change < 3 and time.monotonic() - started_at < seconds + 300:
        time.sleep(0.5)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
    samples = scrape(url)
    dropped = int(value(samples, "mlmon_log_queue_dropped_total"))
    return (last - before) / (last_change - started_at), dropped


def sqlite_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db, timeout=30) as connection:
            return int(connection.execute("SELECT count(*) FROM records").fetchone()[0])

    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--down-seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream_port = free_port()
        with running(
            [sys.executable, str(HERE / "slow_upstream.py"), str(upstream_port), "1"],
            ready_url=f"http://127.0.0.1:{upstream_port}/",
        ):
            print("ingest through the sidecar, 4 clients, 20 numeric features per row")
            print(f"{'store':14} {'rows/request':>12} {'records/s':>10} {'dropped exchanges':>18}")
            for rows in (1, 100, 1000):
                db = workdir / f"ingest-{rows}.db"
                with sidecar_on(upstream_port, workdir, f"sqlite:///{db}") as (url, _):
                    rate, dropped = ingest(url, rows, args.seconds, sqlite_count(db))
                print(f"{'sqlite':14} {rows:12d} {rate:10.0f} {dropped:18d}")
            for line in elasticsearch_ingest(upstream_port, workdir, args.seconds):
                print(line)
            print(outage(upstream_port, workdir, args.down_seconds))
    return 0


def elasticsearch_ingest(upstream_port: int, workdir: Path, seconds: float) -> list[str]:
    try:
        from tests.support.elasticsearch import noida_server
    except ImportError:
        return ["elasticsearch: tests.support.elasticsearch not available"]
    lines = []
    with noida_server(workdir / "noida") as es:
        for rows in (1, 100, 1000):
            with sidecar_on(upstream_port, workdir, es.url) as (url, _):
                rate, dropped = ingest(url, rows, seconds, lambda: es.count("mlmon-inputs-*"))
            lines.append(f"{'elasticsearch':14} {rows:12d} {rate:10.0f} {dropped:18d}")
    return lines


def outage(upstream_port: int, workdir: Path, down_seconds: float) -> str:
    db = workdir / "outage.db"
    with sidecar_on(upstream_port, workdir, f"sqlite:///{db}") as (url, pid):
        drive(url, payload(10), 2)  # the store exists and the pools are warm
        spool_root = next(workdir.glob("spool-*"))
        peak = baseline = tree_rss_bytes(pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss_bytes(pid))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with sqlite_locked(db):
            sent = drive(url, payload(10), down_seconds, clients=2, rate_per_client=100)
        stop.set()
        sampler.join()
        spool = sum(f.stat().st_size for f in spool_root.rglob("*.jsonl"))
    return (
        f"store down {down_seconds:.0f} s under load ({sent} requests x 10 rows): sidecar RSS "
        f"{baseline / 2**20:.0f} MB before, peak {peak / 2**20:.0f} MB; spool {spool / 2**20:.1f}"
        " MB (bound 256 MB); in memory at most queue_max_items exchanges + 50,000 records"
    )


if __name__ == "__main__":
    sys.exit(main())
