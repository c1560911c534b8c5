"""`mlmon-stats`: the stats service's command line.

Subcommands: `infer-schema` (a starting schema from data) and `baseline` (build the
reference from training data). Each subcommand is one `_add_*` function registering its
parser and its `run` function, so later ones (`serve`) slot in the same way.
Errors a user can fix are printed as one line, `mlmon-stats: error: ...`, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter.features import SchemaInference
from exporter.schema import SchemaError, load_schema
from exporter.schema_yaml import schema_to_yaml
from exporter.table import table_to_rows
from stats_service.baseline import BaselineError, build_baseline, save_baseline
from stats_service.progress import ProgressBar
from stats_service.readers import DataReader

PROG = "mlmon-stats"


class UsageError(Exception):
    """A command line that cannot run; printed like the other errors."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        args.run(args)
    except (SchemaError, BaselineError, UsageError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="mlmon statistics service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_infer_schema(commands)
    _add_baseline(commands)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text}")
    return value


def _add_infer_schema(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "infer-schema", help="write a starting schema inferred from a data file"
    )
    command.add_argument("data", type=Path, help="CSV, JSON lines or Parquet file")
    command.add_argument("--out", type=Path, help="schema YAML to write (default: stdout)")
    command.add_argument("--sample-rows", type=_positive, default=10_000, metavar="N")
    command.add_argument("--model", help="model name to put in the schema")
    command.set_defaults(run=_run_infer_schema)


def _run_infer_schema(args: argparse.Namespace) -> None:
    inference = SchemaInference()
    reader = DataReader(args.data)
    for table in reader.chunks(min(args.sample_rows, 50_000)):
        inference.update(table_to_rows(table)[: args.sample_rows - inference.rows_seen])
        if inference.rows_seen >= args.sample_rows:
            break
    if inference.rows_seen == 0:
        raise UsageError(f"{args.data}: no data rows to infer a schema from")
    schema = inference.schema(model=args.model)
    header = (
        f"# Starting schema inferred by {PROG} from {inference.rows_seen} rows of "
        f"{args.data.name}.\n# Review types, ranges, categories and nullable before use.\n"
    )
    text = schema_to_yaml(schema, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    if inference.skipped_fields:
        skipped = ", ".join(inference.skipped_fields[:10])
        print(
            f"{PROG}: note: left out {len(inference.skipped_fields)} fields: {skipped}",
            file=sys.stderr,
        )


def _add_baseline(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser("baseline", help="build a baseline from training data")
    command.add_argument("--schema", type=Path, required=True, help="the model's schema YAML")
    command.add_argument("--data", type=Path, required=True, help="CSV, JSON lines or Parquet")
    command.add_argument("--out", type=Path, required=True, help="baseline JSON to write")
    command.add_argument("--prediction-column", metavar="C")
    command.add_argument("--label-column", metavar="C")
    command.add_argument("--bins", type=_positive, default=10, metavar="N")
    command.add_argument("--sample-size", type=_positive, default=5000, metavar="N")
    command.add_argument(
        "--hash-key-file",
        type=Path,
        help="the sidecar's key for `log: hash` features (required when the schema has any)",
    )
    command.set_defaults(run=_run_baseline)


def _run_baseline(args: argparse.Namespace) -> None:
    schema = load_schema(args.schema)
    hash_key = args.hash_key_file.read_bytes().strip() if args.hash_key_file else None
    if schema.hashed_features() and not hash_key:
        raise UsageError(
            f"{args.schema}: features {', '.join(schema.hashed_features())} have log: hash; "
            "pass --hash-key-file with the sidecar's key"
        )
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        baseline = build_baseline(
            schema,
            args.data,
            prediction_column=args.prediction_column,
            label_column=args.label_column,
            bins=args.bins,
            sample_size=args.sample_size,
            progress=bar,
            hash_key=hash_key,
        )
    finally:
        if bar is not None:
            bar.finish()
    save_baseline(baseline, args.out)
    print(
        f"wrote {args.out}: {baseline.data.rows:,} rows, {len(baseline.features)} feature "
        f"columns, schema {baseline.schema_hash[:12]}, data {baseline.data.sha256[:12]}"
    )


if __name__ == "__main__":
    sys.exit(main())
