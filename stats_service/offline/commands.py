"""What `mlmon-stats export` and `baseline --store` do, between the parser and the modules.

The CLI (`stats_service.cli`) registers the flags and calls these; they print one summary
line on stdout and a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from exporter.schema import Schema
from stats_service.baseline.contents import Baseline
from stats_service.baseline.progress import BuildProgress, ProgressBar
from stats_service.offline.export import ExportResult, export_format, write_export
from stats_service.offline.log_rows import open_log_rows
from stats_service.offline.past_window import parse_past_window
from stats_service.offline.served import build_served_baseline


def export(
    store: str, model: str, window: str, out: Path, *, index_prefix: str | None = None
) -> ExportResult:
    export_format(out)  # a wrong extension fails before the store is read
    past = parse_past_window(window, time.time())
    bar = _bar()
    try:
        options = {} if index_prefix is None else {"index_prefix": index_prefix}
        with open_log_rows(store, model, past, **options) as rows:
            result = write_export(rows, out, progress=_rows_progress(bar))
    finally:
        if bar is not None:
            bar.finish()
    print(
        f"wrote {out}: {result.rows:,} rows of {model}, window {window}, {result.columns} columns"
    )
    return result


def baseline_from_store(
    schema: Schema, store: str, model: str, window: str, *, bins: int, sample_size: int
) -> Baseline:
    """The window exported to a temporary Parquet file, then built like `--data` on it."""
    past = parse_past_window(window, time.time())
    with tempfile.TemporaryDirectory(prefix="mlmon-baseline-") as directory:
        path = Path(directory) / f"{model}.parquet"
        bar = _bar()
        try:
            with open_log_rows(store, model, past) as rows:
                write_export(rows, path, progress=_rows_progress(bar))
        finally:
            if bar is not None:
                bar.finish()
        return build_served_baseline(
            schema,
            path,
            bins=bins,
            sample_size=sample_size,
            data_path=f"{store} model {model} window {window}",
        )


def _bar() -> ProgressBar | None:
    return ProgressBar(sys.stderr) if sys.stderr.isatty() else None


def _rows_progress(bar: ProgressBar | None) -> Callable[[int, int], None] | None:
    if bar is None:
        return None
    return lambda done, total: bar(BuildProgress(done, done, total))
