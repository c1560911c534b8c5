"""`mlmon-stats check`: a data-validation gate for CI, one test case per feature and check.

Two checks per feature, over a data file (training data, or an `export` of served rows,
read through `served.served_schema`):
- quality: the schema's rules, as the sidecar counts them for live rows (a value missing
  where the feature is not nullable, a field missing, a type mismatch, a number outside
  `range`, a category outside `categories`): each rule's share of the file's rows must not
  exceed `max_issue_rate`, nor, if higher, the share the training data had (a rule the
  model was trained breaking is the baseline, not a new failure);
- drift: the stats service's own test against the baseline (`service.runner`), failed
  when detected, saying the method, score and calibrated threshold.
Then one case each for the prediction's drift, the dataset drift share and the
multivariate check, when the baseline has what they need. The same evaluation as
`report` (`offline.data_window`): a file below `min_samples` rows is an error, not a pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter.features.compute import compute_table_features
from exporter.schema import Schema
from stats_service.baseline.contents import Baseline
from stats_service.baseline.readers import DataReader
from stats_service.checks.results import FeatureDrift, WindowResult
from stats_service.offline.data_window import CHUNK_ROWS, summarize_file
from stats_service.offline.errors import OfflineError
from stats_service.offline.junit import TestCase
from stats_service.offline.served import (
    LABEL_COLUMN,
    file_is_export,
    prediction_column,
    served_schema,
)
from stats_service.service.runner import evaluate_window, prepare_model
from stats_service.settings import StatsSettings

RULES = ("missing", "missing_field", "type_mismatch", "out_of_range", "unseen_category")


@dataclass(frozen=True)
class Columns:
    """The file's prediction, label and score columns (None: not in the file)."""

    prediction: str | None = None
    label: str | None = None
    score: str | None = None

    def named(self) -> tuple[str, ...]:
        return tuple(c for c in (self.prediction, self.label, self.score) if c is not None)


@dataclass(frozen=True)
class CheckResult:
    model: str
    rows: int
    cases: tuple[TestCase, ...]

    @property
    def failed(self) -> tuple[TestCase, ...]:
        return tuple(case for case in self.cases if case.failure is not None)


def run_check(
    baseline: Baseline,
    data: Path,
    settings: StatsSettings,
    *,
    model: str,
    columns: Columns,
    max_issue_rate: float,
    hash_key: bytes | None = None,
) -> CheckResult:
    schema = baseline.schema
    if file_is_export(data):
        schema = served_schema(schema)
        columns = Columns(prediction_column(schema, data), LABEL_COLUMN, "prediction_score")
        hash_key = None  # an export's hashed features are hashed already
    read_as = dataclasses.replace(baseline, schema=schema)
    summary = summarize_file(
        read_as,
        data,
        prediction_column=columns.prediction,
        label_column=columns.label,
        score_column=columns.score,
        hash_key=hash_key,
        model=model,
    )
    result = evaluate_window(prepare_model(model, baseline, "", settings), summary)
    if result.status != "ok":
        raise OfflineError(f"{data}: {result.message} (min_samples in --config)")
    issues, rows = _issue_counts(schema, data, columns, hash_key)
    cases = [
        *_quality_cases(model, baseline, schema, issues, rows, max_issue_rate),
        *_drift_cases(model, result),
    ]
    return CheckResult(model, rows, tuple(sorted(cases, key=lambda c: (c.classname, c.name))))


def _issue_counts(
    schema: Schema, data: Path, columns: Columns, hash_key: bytes | None
) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    rows = 0
    for table in DataReader(data).chunks(CHUNK_ROWS):
        batch = compute_table_features(schema, table.without(*columns.named()), hash_key=hash_key)
        for code, count in batch.issue_counts().items():
            counts[code] = counts.get(code, 0) + count
        rows += table.n_rows
    return counts, rows


def _quality_cases(
    model: str,
    baseline: Baseline,
    schema: Schema,
    issues: Mapping[str, int],
    rows: int,
    max_issue_rate: float,
) -> list[TestCase]:
    trained_rows = max(baseline.data.rows, 1)
    cases = []
    for feature in schema.features:
        failures, lines = [], []
        for rule in RULES:
            code = f"{rule}:{feature.name}"
            count = issues.get(code, 0)
            rate = count / rows
            allowed = max(max_issue_rate, baseline.issue_counts.get(code, 0) / trained_rows)
            line = f"{rule}: {rate:.2%} of {rows:,} rows ({count:,}), threshold {allowed:.2%}"
            lines.append(line)
            if rate > allowed:
                failures.append(line)
        cases.append(
            TestCase(
                classname=f"{model}.{feature.name}",
                name="quality",
                failure="; ".join(failures) if failures else None,
                detail="\n".join(lines),
            )
        )
    return cases


def _drift_cases(model: str, result: WindowResult) -> list[TestCase]:
    cases = [_drift_case(model, drift) for drift in result.features]
    if result.prediction is not None:
        cases.append(_drift_case(model, result.prediction))
    if result.drift_share is not None:
        line = f"drift share {result.drift_share:.0%} of features"
        cases.append(
            TestCase(f"{model}.dataset", "drift", line if result.dataset_drift else None, line)
        )
    if result.multivariate is not None:
        m = result.multivariate
        line = f"reconstruction error {m.error:.4g}, threshold {m.threshold:.4g}"
        cases.append(TestCase(f"{model}.multivariate", "drift", line if m.detected else None, line))
    return cases


def _drift_case(model: str, drift: FeatureDrift) -> TestCase:
    method = drift.method(drift.detection_method)
    score = "-" if method is None or method.score is None else f"{method.score:.4g}"
    threshold = "-" if method is None or method.threshold is None else f"{method.threshold:.4g}"
    line = f"{drift.detection_method} {score}, threshold {threshold} ({drift.samples:,} values)"
    return TestCase(
        f"{model}.{drift.feature}",
        "drift",
        f"drift detected: {line}" if drift.detected else None,
        line,
    )
