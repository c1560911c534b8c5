"""`mlmon-stats export` of a SQLite window: seconds and peak RSS, Parquet and CSV.

    .venv/bin/python benchmarks/export_window.py                  # 100,000 and 1,000,000 rows
    .venv/bin/python benchmarks/export_window.py --rows 200000 --no-anchor

Builds the log as `sqlite_window.py` does (20 numeric + 2 categorical features, written with
`SqliteLog.write` in batches of 1,000), then exports the whole window in a fresh child
process per format, so that its peak RSS (VmHWM) is the export's alone. Flat memory shows
as the same peak at 100,000 and 1,000,000 rows. Aim: 1,000,000 rows under 5 s.
The same runs are made in the same run with the code of `--anchor` (a git revision,
default the commit before the export was sped up; extracted with `git archive`), on a log
that code writes itself (its file format may be older), so that the figures compare like
with like on a machine whose load changes; `--no-anchor` skips it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import extract, peak_rss_kib  # noqa: E402

WINDOW = "2000-01-01/2100-01-01"
# The commit before: export parsed each row's document head and wrote Parquet with
# dictionaries on every column.
ANCHOR = "468bba5"


def write_child(db: Path, rows: int) -> None:
    from benchmarks.sqlite_window import write_throughput

    write_throughput(db, rows, 1000)


def export_child(db: Path, out: Path) -> None:
    from benchmarks.sqlite_window import MODEL
    from stats_service.offline.commands import export

    started = time.perf_counter()
    result = export(f"sqlite:///{db}", MODEL, WINDOW, out)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": result.rows, "seconds": seconds, "rss_kib": peak_rss_kib()}))


def run(command: list[str], code: Path | None) -> str:
    """`command` in a fresh process of this script, importing the packages under `code`
    (an extracted revision) instead of this tree's when given."""
    full = [sys.executable, __file__, *command, *(["--code", str(code)] if code else [])]
    return subprocess.run(full, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="default: 100000 and 1000000")
    parser.add_argument("--anchor", default=ANCHOR, help="git revision to compare with")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code is not None:
        # Imported from there now: `sqlite_window` puts this tree first on sys.path, but
        # submodules are then found through the packages already imported.
        sys.path.insert(0, str(args.code))
        import exporter
        import stats_service

        assert Path(exporter.__file__).is_relative_to(args.code), exporter.__file__
        assert Path(stats_service.__file__).is_relative_to(args.code)
    if args.write:
        write_child(Path(args.write[0]), int(args.write[1]))
        return 0
    if args.child:
        export_child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="mlmon-bench-") as tmp:
        trees: dict[str, Path | None] = {"this tree": None}
        if not args.no_anchor:
            trees[f"anchor {args.anchor}"] = Path(tmp) / "anchor"
            extract(args.anchor, Path(tmp) / "anchor")
        print(f"{'':18}{'rows':>10} {'format':8}{'seconds':>8}{'peak RSS MB':>13}{'file MB':>9}")
        for rows in args.rows or [100_000, 1_000_000]:
            for name, code in trees.items():
                db = Path(tmp) / "window.db"
                run(["--write", str(db), str(rows)], code)
                for suffix in ("parquet", "csv"):
                    out = Path(tmp) / f"window.{suffix}"
                    figures = json.loads(
                        run(["--child", str(db), str(out)], code).strip().splitlines()[-1]
                    )
                    print(
                        f"{name:18}{rows:>10,} {suffix:8}{figures['seconds']:8.2f}"
                        f"{figures['rss_kib'] / 1024:13.1f}{out.stat().st_size / 1e6:9.1f}",
                        flush=True,
                    )
                    out.unlink()
                for path in Path(tmp).glob("window.db*"):
                    path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
