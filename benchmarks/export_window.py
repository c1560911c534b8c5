"""`mlmon-stats export` of a SQLite window: seconds and peak RSS, Parquet and CSV.

    .venv/bin/python benchmarks/export_window.py                  # 100,000 and 1,000,000 rows
    .venv/bin/python benchmarks/export_window.py --rows 100000

Builds the log as `sqlite_window.py` does (20 numeric + 2 categorical features, written with
`SqliteLog.write` in batches of 1,000), then exports the whole window in a fresh child
process per format, so that its peak RSS (VmHWM) is the export's alone. Flat memory shows
as the same peak at 100,000 and 1,000,000 rows. Aim: 1,000,000 rows under 5 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import peak_rss_kib
from benchmarks.sqlite_window import MODEL, write_throughput

ROOT = Path(__file__).resolve().parent.parent
WINDOW = "2000-01-01/2100-01-01"


def child(db: Path, out: Path) -> None:
    from stats_service.offline.commands import export

    started = time.perf_counter()
    result = export(f"sqlite:///{db}", MODEL, WINDOW, out)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": result.rows, "seconds": seconds, "rss_kib": peak_rss_kib()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="default: 100000 and 1000000")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    for rows in args.rows or [100_000, 1_000_000]:
        with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
            db = Path(tmp) / "window.db"
            write_throughput(db, rows, 1000)
            for suffix in ("parquet", "csv"):
                out = Path(tmp) / f"window.{suffix}"
                command = [sys.executable, __file__, "--child", str(db), str(out)]
                done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                size = out.stat().st_size / 1e6
                print(
                    f"{rows:>9,} rows -> {suffix:<7} {figures['seconds']:6.2f} s  "
                    f"peak RSS {figures['rss_kib'] / 1024:6.1f} MB  file {size:,.1f} MB"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
