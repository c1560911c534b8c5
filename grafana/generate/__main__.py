"""`python -m grafana.generate [--check] [--output DIR]`: write the dashboards' JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana.generate import DASHBOARDS_DIR, check, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__)
    parser.add_argument("--output", type=Path, default=DASHBOARDS_DIR, help="directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the files differ from the generator's output",
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.output)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
