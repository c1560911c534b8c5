"""Candidate windows from Elasticsearch (noida-db, osmem-server as an OpenSearch cluster,
and the cluster at ELASTICSEARCH_URL when set) are those from SQLite for the same records:
shadows paired with the primary's answers by request id and row, canaries next to the
primary's own answers, ground truth wherever it was posted, and the comparison the stats
service exports from them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.records import GroundTruth, LabelValue, LogRecord, PredictionValue, StoreColumns
from exporter.schema.definition import PredictionSpec
from exporter.store.base import StoreUnavailable
from exporter.store.sqlite.log import SqliteLog
from stats_service.checks.comparison import compare_candidate
from stats_service.service.runner import Runner, prepare_models
from stats_service.settings import WindowSpec, load, parse_window
from stats_service.windows import open_window_reader
from stats_service.windows.candidates import (
    MAX_CANDIDATES,
    CandidateReader,
    CandidateWindow,
    Predictions,
    open_candidate_reader,
)
from stats_service.windows.elasticsearch_candidates import ElasticsearchCandidateReader
from stats_service.windows.spec import decode_label
from tests.support import credit_log
from tests.support.elasticsearch import ENGINES, engine_url, scratch_log
from tests.support.processes import free_port

NOW = float(int(time.time()) - 3600)  # whole seconds: every timestamp is exact in ms
REQUESTS = 40
# Ground truth as clients post it: text stays text, a boolean reads as 1.0 from both.
LABELS: list[LabelValue] = ["1", "0", 1, True, "0"]
SPECS = [parse_window("5m"), parse_window("45s"), parse_window("last_30"), parse_window("last_500")]


def record(request: str, row: int, ts: float, answer: tuple[float, str], route: str = "primary",
           candidate: str = "") -> LogRecord:  # fmt: skip
    suffix = f":shadow:{candidate}" if route == "shadow" else ""
    score, label = answer
    return LogRecord(
        id=f"{request}:{row}{suffix}",
        timestamp=ts,
        request_id=request,
        row=row,
        model="credit",
        model_version="2" if candidate else "1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"age": 30.0 + row},
        prediction=PredictionValue(value=score, label=label, score=max(score, 1 - score)),
        role=route,
        candidate=candidate,
    )


def log_records() -> list[LogRecord]:
    """40 requests of 2 rows over the last 200 s, each copied to shadows "m2" (all) and
    "m3" (every third); request 7's primary records are missing (sampled out). Canary "c1"
    answers 6 requests, the fallback 2; 9 more canaries of one request each."""
    records = []
    for i in range(REQUESTS):
        ts = NOW - 200 + i * 5
        for row in range(2):
            score = round((i * 7 + row * 3) % 10 / 10, 2)
            if i != 7:
                records.append(record(f"r{i}", row, ts, (score, "1" if score >= 0.5 else "0")))
            records.append(record(f"r{i}", row, ts + 0.01, (0.8, "1"), "shadow", "m2"))
            if i % 3 == 0:
                shadowed = round(1 - score, 2)
                records.append(record(f"r{i}", row, ts + 0.02, (shadowed, "0"), "shadow", "m3"))
    records += [
        record(f"k{i}", 0, NOW - 150 + i * 20, (0.3, "0"), "canary", "c1") for i in range(6)
    ]
    records += [
        record(f"f{i}", 0, NOW - 100 + i, (0.5, "1"), "fallback", "naive") for i in range(2)
    ]
    records += [
        record(f"x{i}", 0, NOW - 10, (0.5, "1"), "canary", f"few{i}")
        for i in range(MAX_CANDIDATES + 1)
    ]
    return records


def ground_truth() -> list[GroundTruth]:
    """For every other request's rows, for canary k1, and for a request never logged."""
    truth = [
        GroundTruth(f"r{i}:{row}", LABELS[(i + row) % len(LABELS)], NOW)
        for i in range(0, REQUESTS, 2)
        for row in range(2)
    ]
    return [*truth, GroundTruth("k1:0", "1", NOW), GroundTruth("never:0", "1", NOW)]


@dataclass(frozen=True)
class Readers:
    sqlite: CandidateReader
    elasticsearch: CandidateReader


@pytest.fixture(scope="module", params=ENGINES)
def readers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Readers]:
    records, truth = log_records(), ground_truth()
    path = tmp_path_factory.mktemp("sqlite") / "candidates.db"
    with SqliteLog(path) as sqlite_log:
        sqlite_log.prepare(StoreColumns("credit", numeric=("age",)))
        sqlite_log.write(records)
        sqlite_log.add_ground_truth(truth)
    engine = request.param
    with engine_url(engine, tmp_path_factory.mktemp(engine)) as url, scratch_log(url) as scratch:
        scratch.log.prepare(StoreColumns("credit", numeric=("age",)))
        scratch.log.write(records)
        scratch.log.add_ground_truth(truth)
        scratch.refresh()
        sqlite = open_candidate_reader(f"sqlite:///{path}")
        elasticsearch = open_candidate_reader(url, index_prefix=scratch.prefix)
        assert isinstance(elasticsearch, ElasticsearchCandidateReader)
        yield Readers(sqlite, elasticsearch)
        sqlite.close()
        elasticsearch.close()


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def rows_of(side: Predictions) -> list[tuple[Any, ...]]:
    truth = [None if t is None else decode_label(t) for t in side.truth]
    return list(zip(map(_number, side.value), map(_number, side.score), side.label, truth,
                    strict=True))  # fmt: skip


def comparable(window: CandidateWindow) -> dict[str, Any]:
    """Everything the comparison uses, order-free where the stores' orders differ (SQLite
    by time, Elasticsearch by sample_key); a shadow's pairs stay pairs."""
    primary, answers = rows_of(window.primary), rows_of(window.answers)
    sides: Any = (sorted(primary, key=repr), sorted(answers, key=repr))
    if window.paired:
        sides = sorted(zip(primary, answers, strict=True), key=repr)
    return {
        "key": (window.model, window.window, window.candidate, window.role, window.rows),
        "span": (round(window.start_ts, 3), window.end_ts),
        "sides": sides,
    }


def read_both(readers: Readers, spec: WindowSpec) -> tuple[list[CandidateWindow], ...]:
    return tuple(
        reader.read_candidates("credit", spec, NOW)
        for reader in (readers.sqlite, readers.elasticsearch)
    )


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_elasticsearch_gives_the_candidate_windows_sqlite_gives(
    readers: Readers, spec: WindowSpec
) -> None:
    sqlite, elasticsearch = read_both(readers, spec)
    assert sqlite, "every window here has candidates"
    assert [comparable(w) for w in elasticsearch] == [comparable(w) for w in sqlite]


def test_the_windows_hold_what_the_records_say(readers: Readers) -> None:
    (_, found) = read_both(readers, parse_window("5m"))
    by_name = {w.candidate: w for w in found}
    # The candidates with the most records, at most MAX_CANDIDATES: few0..few8 have one.
    assert [w.candidate for w in found[:3]] == ["m2", "m3", "c1"]
    assert len(found) == MAX_CANDIDATES
    m2 = by_name["m2"]
    # 80 shadow records; request 7's two have no primary record: counted, not paired.
    assert (m2.role, m2.rows, m2.answers.count, m2.primary.count) == ("shadow", 80, 78, 78)
    assert m2.primary.truth == m2.answers.truth
    labelled = [t for t in m2.primary.truth if t is not None]
    assert len(labelled) == 40 and {decode_label(t) for t in labelled} == {"1", "0", 1.0}
    c1 = by_name["c1"]
    assert (c1.role, c1.rows, c1.paired, c1.primary.count) == ("canary", 6, False, 78)
    assert [t for t in c1.answers.truth if t is not None] == ["1"]
    (nothing,) = {
        len(r.read_candidates("never-logged", parse_window("5m"), NOW))
        for r in (readers.sqlite, readers.elasticsearch)
    }
    assert nothing == 0


def test_the_comparison_is_the_same_from_either_store(readers: Readers) -> None:
    spec = PredictionSpec("binary", ("0", "1"))
    sqlite, elasticsearch = read_both(readers, parse_window("5m"))

    def compared(windows: list[CandidateWindow]) -> list[Any]:
        return [_rounded(asdict(compare_candidate(w, None, spec, 5))) for w in windows]

    results = compared(elasticsearch)
    assert results == compared(sqlite)
    m2 = results[0]
    assert (m2["candidate"], m2["status"], m2["agreement_samples"]) == ("m2", "ok", 78)
    assert m2["candidate_performance"] is not None


def _rounded(value: Any) -> Any:
    """Floats to 9 digits: sums over rows in another order differ in the last bits."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def test_a_model_without_an_index_has_no_candidates_and_a_cluster_down_raises(
    tmp_path: Path,
) -> None:
    with engine_url(ENGINES[0], tmp_path) as url:
        reader = open_candidate_reader(url, index_prefix=f"mlmon-none-{uuid.uuid4().hex[:8]}")
        try:
            for spec in SPECS:
                assert reader.read_candidates("credit", spec, NOW) == []
        finally:
            reader.close()
    down = open_candidate_reader(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(StoreUnavailable):
            down.read_candidates("credit", parse_window("5m"), NOW)
    finally:
        down.close()


def credit_records(data: list[tuple[float, str]]) -> list[LogRecord]:
    """tests.support.credit_log's primaries, and a shadow "m2" answering age / 100 + 0.05."""
    records = []
    for i, (age, country) in enumerate(data):
        for route, value in (("primary", age / 100), ("shadow", age / 100 + 0.05)):
            shadow = route == "shadow"
            records.append(
                LogRecord(
                    id=f"r{i}:0:shadow:m2" if shadow else f"r{i}:0",
                    timestamp=credit_log.NOW - 600 + i * 0.1 + (0.001 if shadow else 0.0),
                    request_id=f"r{i}",
                    row=0,
                    model="credit",
                    model_version="2" if shadow else "1",
                    protocol="v2",
                    status=200,
                    latency_ms=1.0,
                    features={"age": age, "country": country},
                    prediction=PredictionValue(value=value),
                    role=route,
                    candidate="m2" if shadow else "",
                )
            )
    return records


@pytest.mark.parametrize("engine", ENGINES)
def test_the_stats_service_compares_the_shadow_alike_from_either_store(
    engine: str, tmp_path: Path
) -> None:
    data = credit_log.rows(np.random.default_rng(7), 300)
    records = credit_records(data)
    truth = [GroundTruth(f"r{i}:0", age / 100, credit_log.NOW) for i, (age, _) in enumerate(data)]
    settings = load(
        environ={
            "MLMON_BASELINES": f"credit={credit_log.write_baseline(tmp_path)}",
            "MLMON_WINDOWS": "1h,last_200",
        }
    )
    contexts = prepare_models(settings)
    columns = StoreColumns("credit", numeric=("age",), categorical=("country",))
    db = tmp_path / "mlmon.db"
    with SqliteLog(db) as sqlite_log:
        sqlite_log.prepare(columns)
        sqlite_log.write(records)
        sqlite_log.add_ground_truth(truth)
    with engine_url(engine, tmp_path / engine) as url, scratch_log(url) as scratch:
        scratch.log.prepare(columns)
        scratch.log.write(records)
        scratch.log.add_ground_truth(truth)
        scratch.refresh()
        evaluations = []
        for store, options in (
            (f"sqlite:///{db}", {}),
            (url, {"index_prefix": scratch.prefix}),
        ):
            runner = Runner(
                contexts,
                settings.window_specs,
                open_window_reader(store, **options),
                candidates=open_candidate_reader(store, **options),
                clock=lambda: credit_log.NOW,
            )
            evaluations.append(runner.evaluate_once())
            runner.reader.close()
            assert runner.candidates is not None
            runner.candidates.close()
    sqlite, elasticsearch = evaluations
    assert sqlite.errors == elasticsearch.errors == 0
    compared = [[_rounded(asdict(c)) for c in e.comparisons] for e in (sqlite, elasticsearch)]
    assert compared[1] == compared[0]
    hour, newest = elasticsearch.comparisons
    assert (hour.candidate, hour.status, hour.primary_samples) == ("m2", "ok", 300)
    assert hour.mean_abs_diff["value"] == pytest.approx(0.05)
    assert hour.candidate_performance is not None
    assert hour.candidate_performance.metrics["mae"] == pytest.approx(0.05)
    assert (newest.window, newest.primary_samples) == ("last_200", 200)
