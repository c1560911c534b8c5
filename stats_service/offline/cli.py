"""The offline subcommands of `mlmon-stats`: export, replay, check; and `baseline --store`.

Registered by `stats_service.cli` next to its own; errors are `OfflineError` (exit code 2)
and `GateFailed` (exit code 1), which it maps like its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from exporter.schema import Schema
from stats_service.baseline.contents import Baseline
from stats_service.offline.errors import OfflineError
from stats_service.offline.past_window import FORMS

WINDOW_HELP = f"the past window: {FORMS}"
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_offline_commands(commands: Commands) -> None:
    _add_export(commands)
    _add_replay(commands)
    _add_check(commands)


def served_baseline(args: argparse.Namespace, schema: Schema) -> Baseline | None:
    """`baseline --store ...`, or `baseline --data` on an export file; None for training
    data, which the CLI's own path builds."""
    from stats_service.offline import commands
    from stats_service.offline.served import build_served_baseline, file_is_export

    if args.store is not None:
        if args.data is not None or args.model is None or args.window is None:
            raise OfflineError("--store goes with --model and --window, and without --data")
        return commands.baseline_from_store(
            schema,
            args.store,
            args.model,
            args.window,
            bins=args.bins,
            sample_size=args.sample_size,
        )
    if args.data is None:
        raise OfflineError("expected --data FILE, or --store URL --model M --window SPEC")
    if args.model is not None or args.window is not None:
        raise OfflineError("--model and --window go with --store")
    if args.data.is_file() and file_is_export(args.data):
        return build_served_baseline(
            schema, args.data, bins=args.bins, sample_size=args.sample_size
        )
    return None


def _add_export(commands: Commands) -> None:
    command = commands.add_parser(
        "export",
        help="write a past window of the input log to Parquet or CSV, as it was served",
        description="One row per logged record: timestamp, request id, model version, "
        "protocol, route, prediction, label where it arrived, and the features as logged.",
    )
    command.add_argument("--store", required=True, help="the input log: sqlite:///path.db or a URL")
    command.add_argument("--model", required=True, help="the model whose records to export")
    command.add_argument("--window", required=True, metavar="SPEC", help=WINDOW_HELP)
    command.add_argument(
        "--out", type=Path, required=True, help="file to write; .parquet or .csv picks the format"
    )
    command.add_argument(
        "--index-prefix",
        metavar="P",
        help="Elasticsearch only: the sidecar's elasticsearch.index_prefix (default mlmon-inputs)",
    )
    command.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from stats_service.offline import commands

    commands.export(args.store, args.model, args.window, args.out, index_prefix=args.index_prefix)


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1; got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text}")
    return value


def _add_replay(commands: Commands) -> None:
    from stats_service.offline.replay_protocols import PROTOCOLS

    command = commands.add_parser(
        "replay",
        help="send exported rows to a candidate model server and compare its predictions",
        description="Exit code 1 when a threshold is missed, 2 when the replay cannot run "
        "(a missing file, a candidate that cannot be reached).",
    )
    command.add_argument("--data", type=Path, required=True, help="an `export` file")
    command.add_argument("--candidate", required=True, help="the candidate's base URL")
    command.add_argument(
        "--protocol", choices=PROTOCOLS, help="default: each row's logged protocol"
    )
    command.add_argument("--model", help="the model name in request paths (default: the export's)")
    command.add_argument("--batch-size", type=_positive, default=32, metavar="ROWS")
    command.add_argument("--concurrency", type=_positive, default=4, metavar="N")
    command.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    command.add_argument(
        "--tolerance", type=float, default=0.01, help="regressions: relative difference that agrees"
    )
    command.add_argument("--top", type=int, default=10, metavar="N", help="rows that differ most")
    command.add_argument("--min-agreement", type=_share, metavar="SHARE")
    command.add_argument("--max-distance", type=float, metavar="D")
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    command.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> None:
    import dataclasses
    import json

    from stats_service.offline.errors import GateFailed
    from stats_service.offline.replay import ReplaySettings, replay
    from stats_service.offline.replay_report import gate, render

    settings = ReplaySettings(
        candidate=args.candidate,
        model=args.model,
        protocol=args.protocol,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        tolerance=args.tolerance,
        top=args.top,
    )
    result = gate(replay(args.data, settings), args.min_agreement, args.max_distance)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=1, allow_nan=False))
    else:
        print(render(result))
    if result.violations:
        raise GateFailed


def _add_check(commands: Commands) -> None:
    command = commands.add_parser(
        "check",
        help="a CI gate: the schema's quality rules and the drift tests on a data file",
        description="Exit code 1 when a check fails; --junit-xml writes one test case per "
        "feature and check.",
    )
    command.add_argument("--baseline", type=Path, required=True, help="baseline JSON")
    command.add_argument(
        "--data", type=Path, required=True, help="CSV, JSON lines or Parquet; or an `export` file"
    )
    command.add_argument("--junit-xml", type=Path, metavar="PATH", help="JUnit XML to write")
    command.add_argument("--config", type=Path, help="stats settings YAML (drift, min_samples)")
    command.add_argument(
        "--max-issue-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="rows breaking one schema rule allowed beyond the training data's share (0)",
    )
    command.add_argument("--prediction-column", metavar="C")
    command.add_argument("--label-column", metavar="C")
    command.add_argument("--score-column", metavar="C")
    command.add_argument("--hash-key-file", type=Path, help="the key of `log: hash` features")
    command.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> None:
    from stats_service.baseline.files import load_baseline
    from stats_service.offline.ci_check import Columns, run_check
    from stats_service.offline.errors import GateFailed
    from stats_service.offline.junit import write_junit
    from stats_service.settings import load

    settings = load(args.config, overrides={"baselines": f"data={args.baseline}"})
    baseline = load_baseline(args.baseline)
    model = baseline.schema.model or args.baseline.stem
    result = run_check(
        baseline,
        args.data,
        settings,
        model=model,
        columns=Columns(args.prediction_column, args.label_column, args.score_column),
        max_issue_rate=args.max_issue_rate,
        hash_key=args.hash_key_file.read_bytes().strip() if args.hash_key_file else None,
    )
    if args.junit_xml is not None:
        write_junit(args.junit_xml, f"mlmon-stats check {model}", result.cases)
    for case in result.failed:
        print(f"FAIL {case.classname} {case.name}: {case.failure}")
    print(
        f"{len(result.cases) - len(result.failed)} of {len(result.cases)} checks passed "
        f"on {result.rows:,} rows of {args.data}"
    )
    if result.failed:
        raise GateFailed
