"""Input-log pipeline: the sidecar's worker and log writer, the stats service's cycles,
and the latest logged inputs straight from Elasticsearch."""

from __future__ import annotations

from grafana_foundation_sdk.builders import elasticsearch, table
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

from grafana.generate.board import Board, Generated
from grafana.generate.kit import (
    COUNT,
    ELASTICSEARCH,
    MODEL,
    STACKED,
    Style,
    max_by,
    prom,
    quantiles,
    query_variable,
    rare_failures,
    sum_rate,
)
from grafana.generate.panels import stat_panel, table_panel, timeseries

LATEST_INPUTS_ROWS = 100
# The record's fields (ARCHITECTURE.md "The logged record", exporter/store/
# elasticsearch/mapping.py) in reading order; `features.*` columns follow.
RECORD_COLUMNS = (
    "@timestamp",
    "model",
    "model_version",
    "request_id",
    "row",
    "status",
    "latency_ms",
    "prediction.label",
    "prediction.value",
    "prediction.score",
    "label",
    "issues",
    "protocol",
)
HIDDEN_COLUMNS = ("_id", "_index", "_type", "_source", "highlight", "sort", "sample_key")
# Lost for good: past the spool bound, or refused by the store.
LOST = 'outcome=~"dropped|failed"'
EVALUATION_AGE_STEPS = (("green", None), ("orange", 120.0), ("red", 600.0))
# Counts where a single one is already a problem.
ANY_IS_RED = Style(unit="short", decimals=0, steps=(("green", None), ("red", 1.0)))


def latest_inputs_query() -> elasticsearch.Dataquery:
    """Raw documents of the selected models, newest first (Grafana sorts raw_data by the
    time field, descending)."""
    return (
        elasticsearch.Dataquery()
        .datasource(ELASTICSEARCH)
        .query("model:$model")
        .time_field("@timestamp")
        .bucket_aggs([])
        .metrics(
            [
                elasticsearch.RawData()
                .id("1")
                .settings(
                    elasticsearch.ElasticsearchRawDataSettings().size(str(LATEST_INPUTS_ROWS))
                )
            ]
        )
    )


def build() -> Generated:
    board = Board(
        "mlmon-pipeline",
        "mlmon / Input-log pipeline",
        "Health of the path from the sidecar to the input log and on to the stats service: "
        "records by outcome, worker queue, spool, write latency, evaluation cycles, and "
        "the latest logged inputs.",
        [
            # No ".*" for "All": the variable also filters the Elasticsearch (Lucene) query,
            # where Grafana then writes ("a" OR "b").
            query_variable(
                "model",
                "Model",
                "Models the sidecar has seen (filters the latest-inputs table and the "
                "window errors).",
                "label_values(mlmon_model_info, model)",
                all_value=None,
            )
        ],
    )
    _input_log_row(board)
    _worker_row(board)
    _stats_service_row(board)
    board.row("Latest inputs")
    board.add(_latest_inputs(), 24, 12)
    return board.generate()


def _input_log_row(board: Board) -> None:
    board.row("Input log")
    board.add(
        timeseries(
            "Records by outcome",
            "Input-log records per second: written to the store, spooled to disk while it "
            "was down, replayed from the spool, dropped (spool full) or failed (refused).",
            [prom(sum_rate("outcome", "mlmon_log_records_total"), "{{outcome}}")],
            Style(unit="suffix: records/s", min=0),
            stack=STACKED,
        ),
        12,
    )
    board.add(
        stat_panel(
            "Records lost",
            "Records dropped (spool full) or refused by the store over the dashboard's time "
            "range. Anything above 0 is red: those inputs are missing from every statistic.",
            [
                prom(
                    f"sum(increase(mlmon_log_records_total{{{LOST}}}[$__range])) or vector(0)",
                    instant=True,
                )
            ],
            ANY_IS_RED,
        ),
        4,
    )
    board.add(
        timeseries(
            "Spool size",
            "Bytes of records waiting in the on-disk spool, per sidecar. Above 0 the store "
            "is (or was) down or slow; records are replayed when it is back.",
            [prom(max_by("instance", "mlmon_log_spool_bytes"), "{{instance}}")],
            Style(unit="bytes", min=0, steps=(("green", None), ("orange", 1.0))),
        ),
        8,
    )
    board.add(
        timeseries(
            "Store write latency p50 / p99",
            "Time of one batch write to the input log (Elasticsearch bulk or SQLite).",
            quantiles("", "mlmon_log_write_duration_seconds", "", ""),
            Style(unit="s", min=0),
        ),
        12,
    )


def _worker_row(board: Board) -> None:
    board.row("Sidecar worker")
    board.add(
        timeseries(
            "Worker queue depth",
            "Exchanges waiting for the background worker, per sidecar.",
            [prom("sum by (instance) (mlmon_log_queue_depth)", "{{instance}}")],
            COUNT,
        ),
        8,
    )
    board.add(
        timeseries(
            "Worker queue drops",
            "Exchanges not analysed per second because the worker queue was full, by "
            "reason (count or bytes). They are proxied but never logged nor measured.",
            [prom(sum_rate("reason", "mlmon_log_queue_dropped_total"), "{{reason}}")],
            rare_failures("suffix: /s"),
        ),
        8,
        may_be_empty=True,
    )
    board.add(
        timeseries(
            "Worker batch duration p50 / p99",
            "Time the worker took for one drained batch of exchanges (adapter, features, "
            "data quality, prediction metrics).",
            quantiles("", "mlmon_worker_duration_seconds", "", ""),
            Style(unit="s", min=0),
        ),
        8,
    )


def _stats_service_row(board: Board) -> None:
    board.row("Stats service")
    board.add(
        stat_panel(
            "Last evaluation age",
            "Time since the latest evaluation cycle started. Orange after 2 minutes (4 "
            "cycles at the default 30 s interval), red after 10.",
            [
                prom(
                    f"time() - {max_by('instance', 'mlmon_last_evaluation_timestamp_seconds')}",
                    "{{instance}}",
                )
            ],
            Style(unit="s", steps=EVALUATION_AGE_STEPS),
        ),
        6,
    )
    board.add(
        timeseries(
            "Evaluation duration",
            "How long the latest cycle over every model and window took. Orange from 15 s, "
            "red from 30 s (the default interval: cycles start to run back to back).",
            [prom(max_by("instance", "mlmon_evaluation_duration_seconds"), "{{instance}}")],
            Style(unit="s", min=0, steps=(("green", None), ("orange", 15.0), ("red", 30.0))),
            threshold_lines=True,
        ),
        6,
    )
    board.add(
        timeseries(
            "Evaluations and evaluation errors",
            "Cycles completed, and windows that could not be read or evaluated (store down, "
            "bad data), per interval.",
            [
                prom(
                    sum_rate("instance", "mlmon_evaluations_total", func="increase"),
                    "cycles {{instance}}",
                ),
                prom(
                    sum_rate("instance", "mlmon_evaluation_errors_total", func="increase"),
                    "errors {{instance}}",
                ),
            ],
            Style(unit="short", min=0),
        ),
        6,
    )
    board.add(
        stat_panel(
            "Windows in error",
            "Windows of the selected models whose latest evaluation failed.",
            [prom(f'sum(mlmon_window_status{{{MODEL}, status="error"}})')],
            ANY_IS_RED,
        ),
        6,
    )


def _latest_inputs() -> table.Panel:
    return table_panel(
        "Latest inputs",
        f"The {LATEST_INPUTS_ROWS} newest input-log records of the selected models in "
        "the time range, from Elasticsearch (index pattern mlmon-inputs-*): "
        "preprocessed features, prediction, ground truth if it arrived, issues. Only "
        "with the Elasticsearch input log; the SQLite one is not queryable here.",
        [latest_inputs_query()],
        datasource=ELASTICSEARCH,
        organize={
            "excludeByName": dict.fromkeys(HIDDEN_COLUMNS, True),
            "indexByName": {name: index for index, name in enumerate(RECORD_COLUMNS)},
            "renameByName": {},
        },
    ).override_by_name("latency_ms", [DynamicConfigValue(id_val="unit", value="ms")])
