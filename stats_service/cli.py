"""`mlmon-stats`: the stats service's command line.

Subcommands: `infer-schema` (a starting schema from data: features, and a `prediction:`
section told from the prediction and label columns, `stats_service.baseline.schema_sample`),
`baseline` (build the reference from training data), `serve` (evaluate the input log's
windows continuously and serve the gauges) and `report` (the same evaluation, once, of a
data file). Each subcommand is one `_add_*` function registering its parser and its `run`
function. Errors a user can fix are printed as one line, `mlmon-stats: error: ...`, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter.errors import SettingsError
from exporter.schema import SchemaError, load_schema, schema_to_yaml
from stats_service.baseline.column_roles import ColumnRoleError, Role
from stats_service.baseline.contents import Baseline, BaselineError
from stats_service.baseline.progress import ProgressBar
from stats_service.offline.errors import GateFailed, OfflineError

PROG = "mlmon-stats"


class UsageError(Exception):
    """A command line that cannot run; printed like the other errors."""


class DriftDetected(Exception):  # noqa: N818 - an outcome, reported by the exit code
    """`report` found drift: exit code 1, so a CI pipeline can gate a model on it."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        args.run(args)
    except (DriftDetected, GateFailed):
        return 1
    except (
        SchemaError,
        BaselineError,
        SettingsError,
        UsageError,
        ColumnRoleError,
        OfflineError,
        OSError,
    ) as exc:
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
    _add_serve(commands)
    _add_report(commands)
    from stats_service.offline.cli import add_offline_commands

    add_offline_commands(commands)
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
    command.add_argument(
        "--prediction-column", metavar="C", help="the model's output (default: by its name)"
    )
    command.add_argument("--label-column", metavar="C", help="ground truth (default: by its name)")
    command.add_argument("--score-column", metavar="C", help="confidence of the predicted label")
    command.add_argument(
        "--no-detect-columns",
        dest="detect_columns",
        action="store_false",
        help="take no column as prediction or label by its name (prediction, label, target...)",
    )
    command.set_defaults(run=_run_infer_schema)


def _run_infer_schema(args: argparse.Namespace) -> None:
    # Imported here, as the baseline builder below: their CSV reader loads pyarrow (about
    # 30 MB), which `serve` never needs.
    from stats_service.baseline.schema_sample import sample_schema_inputs

    flags: dict[Role, str | None] = {
        "prediction": args.prediction_column,
        "score": args.score_column,
        "label": args.label_column,
    }
    sampled = sample_schema_inputs(args.data, args.sample_rows, flags, detect=args.detect_columns)
    if sampled.rows == 0:
        raise UsageError(f"{args.data}: no data rows to infer a schema from")
    schema = sampled.inference.schema(model=args.model)
    task = sampled.task()
    if task is not None and task.spec is not None:
        schema = dataclasses.replace(schema, prediction=task.spec)
    header = (
        f"# Starting schema inferred by {PROG} from {sampled.rows} rows of "
        f"{args.data.name}.\n# Review types, ranges, categories and nullable before use.\n"
        + "".join(f"# {line}\n" for line in sampled.notes(task))
    )
    text = schema_to_yaml(schema, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    for line in sampled.notes(task):
        print(f"{PROG}: note: {line}", file=sys.stderr)
    skipped_fields = sampled.inference.skipped_fields
    if skipped_fields:
        skipped = ", ".join(skipped_fields[:10])
        print(f"{PROG}: note: left out {len(skipped_fields)} fields: {skipped}", file=sys.stderr)


def _add_baseline(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "baseline", help="build a baseline from training data, or from a window of the input log"
    )
    command.add_argument("--schema", type=Path, required=True, help="the model's schema YAML")
    command.add_argument(
        "--data", type=Path, help="CSV, JSON lines or Parquet (an `export` file: as served)"
    )
    command.add_argument("--store", help="instead of --data: the input log's URL")
    command.add_argument("--model", help="with --store: the model whose served features to use")
    command.add_argument("--window", metavar="SPEC", help="with --store: 1h, last_N or START/END")
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
    from stats_service.baseline.build import build_baseline, save_baseline
    from stats_service.offline.cli import served_baseline

    schema = load_schema(args.schema)
    baseline = served_baseline(args, schema)
    if baseline is not None:
        save_baseline(baseline, args.out)
        print(f"wrote {args.out}: {baseline.data.rows:,} served rows of {baseline.data.path}")
        return
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


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "serve", help="evaluate the input log's windows continuously; serve /metrics"
    )
    command.add_argument("--config", type=Path, help="YAML settings (MLMON_* variables override)")
    command.add_argument(
        "--baseline",
        dest="baselines",
        action="append",
        metavar="MODEL=FILE",
        help="a model and its baseline (repeat for several models)",
    )
    command.add_argument("--store", help="the sidecar's input log: sqlite:///path.db or a URL")
    command.add_argument("--host", help="address to bind (default 127.0.0.1)")
    command.add_argument("--port", type=int, help="port to listen on (default 8001)")
    command.add_argument("--interval", dest="interval_s", type=float, metavar="SECONDS")
    command.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    from stats_service.service.serve import serve
    from stats_service.settings import load

    overrides = {
        "baselines": ",".join(args.baselines) if args.baselines else None,
        "store": args.store,
        "host": args.host,
        "port": args.port,
        "interval_s": args.interval_s,
    }
    serve(load(args.config, overrides=overrides))


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "report",
        help="evaluate a data file against a baseline once; exit 1 when drift is detected",
    )
    command.add_argument("--baseline", type=Path, required=True, help="baseline JSON")
    command.add_argument("--data", type=Path, required=True, help="CSV, JSON lines or Parquet")
    command.add_argument("--config", type=Path, help="stats settings YAML (the drift section)")
    command.add_argument("--json", action="store_true", help="print the results as JSON")
    command.add_argument("--prediction-column", metavar="C")
    command.add_argument("--label-column", metavar="C")
    command.add_argument("--score-column", metavar="C", help="confidence of the predicted label")
    command.add_argument("--hash-key-file", type=Path, help="the key of `log: hash` features")
    command.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    import json

    from stats_service.baseline.files import load_baseline
    from stats_service.offline.data_window import summarize_file
    from stats_service.offline.report import drift_detected, render_table, result_to_dict
    from stats_service.service.runner import evaluate_window, prepare_model
    from stats_service.settings import load

    # The baseline named on the command line is the one model evaluated.
    settings = load(args.config, overrides={"baselines": f"data={args.baseline}"})
    baseline = load_baseline(args.baseline)
    model = report_model_name(baseline, args.baseline)
    summary = summarize_file(
        baseline,
        args.data,
        prediction_column=args.prediction_column,
        label_column=args.label_column,
        score_column=args.score_column,
        hash_key=args.hash_key_file.read_bytes().strip() if args.hash_key_file else None,
        model=model,
    )
    context = prepare_model(model, baseline, str(args.baseline), settings)
    result = evaluate_window(context, summary)
    if result.status != "ok":
        raise UsageError(f"{args.data}: {result.message} (min_samples in --config)")
    if args.json:
        print(json.dumps(result_to_dict(result), indent=1, allow_nan=False))
    else:
        print(render_table(result))
    if drift_detected([result]):
        raise DriftDetected


def report_model_name(baseline: Baseline, path: Path) -> str:
    """The model a report is about: the schema's `model`, else the baseline file's stem."""
    return baseline.schema.model or path.stem


if __name__ == "__main__":
    sys.exit(main())
