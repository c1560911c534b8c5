"""`mlmon-stats replay`: a candidate model against the rows production sent, before it ships.

The rows of an export file go to the candidate in batches (`replay_protocols`), at most
`concurrency` requests in flight, each with a timeout; what it answers is set against
what the logged model answered for the same rows:
- agreement: the share of rows where both predict the same class (classifiers: the
  logged rows have a predicted class), or the same value within `tolerance` relative
  to max(1, |logged|) (regressions);
- distance between the two prediction distributions: Jensen-Shannon distance of the
  class shares, or the two-sample KS statistic of the values (`checks.drift`);
- performance of both on the rows whose ground truth arrived (`checks.performance`, the
  task inferred from the labels as the stats service does without a schema);
- the rows where they differ most: different classes first, then by the difference of
  the scores (classifiers) or of the values.
A candidate that cannot be reached fails the replay at its first request; answers with an
HTTP error count as failed rows.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from stats_service.checks.drift.binned import jensenshannon, shares
from stats_service.checks.drift.samples import ks_test
from stats_service.checks.performance import evaluate_performance
from stats_service.checks.results import PerformanceResult
from stats_service.offline.errors import OfflineError
from stats_service.offline.export import RECORD_COLUMNS, export_format, is_export
from stats_service.offline.replay_protocols import PROTOCOLS, Answer, AnswerError, answers, request
from stats_service.windows.spec import decode_label
from stats_service.windows.summary import Labelled

READ_ROWS = 10_000


@dataclass(frozen=True)
class ReplaySettings:
    candidate: str  # base URL, http://host:port
    model: str | None = None  # default: the export's model
    protocol: str | None = None  # default: each row's logged protocol
    batch_size: int = 32
    concurrency: int = 4
    timeout_s: float = 10.0
    tolerance: float = 0.01
    top: int = 10


@dataclass(frozen=True)
class RowDifference:
    request_id: str
    row: int
    logged: float | str | None
    candidate: float | str | None
    difference: float | None  # |score or value difference|; None: not comparable


@dataclass(frozen=True)
class Distance:
    method: str  # jensenshannon (classes) | ks (values)
    score: float | None


@dataclass(frozen=True)
class ReplayResult:
    rows: int
    answered: int
    failed: int  # rows of requests the candidate answered with an error
    kind: str  # classification | regression
    agreement: float | None
    distance: Distance
    logged_performance: PerformanceResult | None
    candidate_performance: PerformanceResult | None
    differences: tuple[RowDifference, ...] = ()
    first_error: str = ""
    violations: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _Rows:
    """What the replay keeps per row: the logged outputs and, once answered, the
    candidate's. Features are only in flight."""

    request_id: list[str] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    label: list[str | None] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    truth: list[Any] = field(default_factory=list)
    answers: list[Answer | None] = field(default_factory=list)


def replay(path: Path, settings: ReplaySettings) -> ReplayResult:
    if settings.protocol is not None and settings.protocol not in PROTOCOLS:
        raise OfflineError(f"--protocol: expected one of {', '.join(PROTOCOLS)}")
    model = settings.model or _export_model(path)
    kept = _Rows()
    failed, first_error = 0, ""
    with ThreadPoolExecutor(settings.concurrency) as pool:
        for table in _tables(path):
            features = [name for name in table.column_names if name not in RECORD_COLUMNS]
            records = table.to_pylist()
            offset = len(kept.answers)
            _keep(kept, records)
            jobs = list(_jobs(records, features, settings, model, offset))
            for start, got, error in pool.map(lambda job: _send(job, settings), jobs):
                if error:
                    failed += len(got)
                    first_error = first_error or error
                for i, answer in enumerate(got):
                    kept.answers[start + i] = answer
    return _compare(kept, failed, first_error, settings)


def _export_model(path: Path) -> str:
    if export_format(path) == "parquet":
        metadata = pq.read_schema(path).metadata or {}
        document = metadata.get(b"mlmon.export")
        if document:
            return str(json.loads(document)["model"])
    raise OfflineError(f"{path}: pass --model, the model name the candidate serves")


def _tables(path: Path) -> Iterator[pa.Table]:
    if not path.is_file():
        raise OfflineError(f"{path}: data file not found")
    kind = export_format(path)
    if kind == "parquet":
        reader = pq.ParquetFile(path)
        if not is_export(reader.schema_arrow.names):
            raise OfflineError(f"{path}: not an `mlmon-stats export` file")
        for batch in reader.iter_batches(batch_size=READ_ROWS):
            yield pa.Table.from_batches([batch])
        return
    options = pa_csv.ReadOptions(block_size=1 << 22)
    convert = pa_csv.ConvertOptions(
        column_types={"request_id": pa.string(), "prediction_label": pa.string()}
    )
    with pa_csv.open_csv(path, read_options=options, convert_options=convert) as stream:
        if not is_export(stream.schema.names):
            raise OfflineError(f"{path}: not an `mlmon-stats export` file")
        for batch in stream:
            yield pa.Table.from_batches([batch])


def _keep(kept: _Rows, records: Sequence[dict[str, Any]]) -> None:
    for record in records:
        kept.request_id.append(str(record["request_id"]))
        kept.row.append(int(record["row"] or 0))
        kept.value.append(_number(record["prediction"]))
        label = record["prediction_label"]
        kept.label.append(None if label is None else str(label))
        kept.score.append(_number(record["prediction_score"]))
        kept.truth.append(record["label"])
        kept.answers.append(None)


def _jobs(
    records: Sequence[dict[str, Any]],
    features: Sequence[str],
    settings: ReplaySettings,
    model: str,
    offset: int,
) -> Iterator[tuple[int, str, dict[str, Any], int]]:
    """(first row, path, body, rows) per request; rows of one request share a protocol."""
    start = 0
    while start < len(records):
        protocol = settings.protocol or str(records[start]["protocol"] or "v2")
        end = start + 1
        while (
            end < len(records)
            and end - start < settings.batch_size
            and (settings.protocol or records[end]["protocol"] or "v2") == protocol
        ):
            end += 1
        if protocol not in PROTOCOLS:
            raise OfflineError(
                f"rows logged with protocol {protocol!r}: pass --protocol, one of "
                f"{', '.join(PROTOCOLS)}"
            )
        rows = [{name: _json_value(r[name]) for name in features} for r in records[start:end]]
        path, body = request(protocol, model, rows, features)
        yield offset + start, protocol + path, body, end - start
        start = end


def _send(
    job: tuple[int, str, dict[str, Any], int], settings: ReplaySettings
) -> tuple[int, list[Answer | None], str]:
    start, target, body, rows = job
    protocol, _, path = target.partition("/")
    url = settings.candidate.rstrip("/") + "/" + path
    data = json.dumps(body, allow_nan=False).encode()
    call = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(call, timeout=settings.timeout_s) as response:
            document = json.loads(response.read())
        return start, list(answers(protocol, document, rows)), ""
    except urllib.error.HTTPError as exc:
        return start, [None] * rows, f"{url}: HTTP {exc.code}"
    except (AnswerError, ValueError) as exc:
        return start, [None] * rows, f"{url}: unreadable answer: {exc}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"candidate {settings.candidate} is not reachable: {reason}") from exc


def _compare(kept: _Rows, failed: int, first_error: str, settings: ReplaySettings) -> ReplayResult:
    answered = [i for i, a in enumerate(kept.answers) if a is not None]
    if not answered:
        raise OfflineError(f"the candidate answered no row: {first_error or 'no rows'}")
    got = [kept.answers[i] or Answer() for i in answered]
    classes = any(kept.label[i] is not None for i in answered)
    differences: list[RowDifference] = []
    if classes:
        logged_labels = [kept.label[i] for i in answered]
        new_labels = [a.label for a in got]
        both = [(a, b) for a, b in zip(logged_labels, new_labels, strict=True) if a and b]
        agreement = sum(a == b for a, b in both) / len(both) if both else None
        distance = Distance("jensenshannon", _label_distance(logged_labels, new_labels))
        for i, answer in zip(answered, got, strict=True):
            gap = _gap(kept.score[i], answer.score)
            if kept.label[i] != answer.label or (gap or 0.0) > 0:
                mismatch = kept.label[i] != answer.label
                differences.append(
                    RowDifference(
                        kept.request_id[i],
                        kept.row[i],
                        kept.label[i],
                        answer.label,
                        None if gap is None else gap + (1.0 if mismatch else 0.0),
                    )
                )
    else:
        logged = np.array([kept.value[i] for i in answered])
        new = np.array([_number(a.value) for a in got])
        comparable = ~np.isnan(logged) & ~np.isnan(new)
        close = np.abs(new - logged) <= settings.tolerance * np.maximum(1.0, np.abs(logged))
        agreement = float(close[comparable].mean()) if comparable.any() else None
        test = ks_test(new, logged)
        distance = Distance("ks", None if test is None else test.statistic)
        for i, answer in zip(answered, got, strict=True):
            gap = _gap(kept.value[i], answer.value)
            if gap:
                differences.append(
                    RowDifference(kept.request_id[i], kept.row[i], kept.value[i], answer.value, gap)
                )
    differences.sort(key=lambda d: -(d.difference if d.difference is not None else math.inf))
    return ReplayResult(
        rows=len(kept.answers),
        answered=len(answered),
        failed=failed,
        kind="classification" if classes else "regression",
        agreement=agreement,
        distance=distance,
        logged_performance=_performance(kept, answered, None),
        candidate_performance=_performance(kept, answered, got),
        differences=tuple(differences[: settings.top]),
        first_error=first_error,
    )


def _performance(
    kept: _Rows, answered: Sequence[int], got: Sequence[Answer] | None
) -> PerformanceResult | None:
    picked = [(n, i) for n, i in enumerate(answered) if kept.truth[i] is not None]
    if not picked:
        return None
    if got is None:
        values = [kept.value[i] for _, i in picked]
        labels = [kept.label[i] for _, i in picked]
        scores = [kept.score[i] for _, i in picked]
    else:
        values = [_number(got[n].value) for n, _ in picked]
        labels = [got[n].label for n, _ in picked]
        scores = [_number(got[n].score) for n, _ in picked]
    return evaluate_performance(
        None,
        Labelled(
            truth=tuple(decode_label(kept.truth[i]) for _, i in picked),
            predicted_value=np.array(values, dtype=np.float64),
            predicted_label=tuple(labels),
            score=np.array(scores, dtype=np.float64),
        ),
    )


def _label_distance(logged: Sequence[str | None], new: Sequence[str | None]) -> float | None:
    classes = sorted({c for c in (*logged, *new) if c is not None})
    if not classes:
        return None
    counts = [[sum(1 for v in side if v == c) for c in classes] for side in (logged, new)]
    if not sum(counts[0]) or not sum(counts[1]):
        return None
    return float(jensenshannon(shares(counts[0]), shares(counts[1])))


def _gap(logged: float | None, new: float | None) -> float | None:
    a, b = _number(logged), _number(new)
    return None if math.isnan(a) or math.isnan(b) else abs(a - b)


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | str):
        return math.nan
    return float(value)


def _json_value(value: Any) -> Any:
    """A value JSON can carry: NaN and infinities are missing (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
