"""Candidate windows read from a real SQLite input log written by the sidecar's writer:
shadows paired with the primary's answers by request id and row, canaries next to the
primary's own answers, ground truth where it was posted, bounded candidates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.records import GroundTruth, LogRecord, PredictionValue, StoreColumns
from exporter.store.sqlite.log import SqliteLog
from stats_service.settings import parse_window
from stats_service.windows.candidates import (
    MAX_CANDIDATES,
    SqliteCandidateReader,
    open_candidate_reader,
)

NOW = 1_800_000_000.0


def record(
    request: str, ts: float, label: str, score: float, role: str = "primary", candidate: str = ""
) -> LogRecord:
    suffix = f":shadow:{candidate}" if role == "shadow" else ""
    return LogRecord(
        id=f"{request}:0{suffix}",
        timestamp=ts,
        request_id=request,
        row=0,
        model="credit",
        model_version="2" if candidate else "1",
        protocol="v2",
        status=200,
        latency_ms=1.0,
        features={"age": 30.0},
        prediction=PredictionValue(label=label, score=score),
        role=role,
        candidate=candidate,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """10 requests in the last 100 s: each answered by the primary ("1" for even ones),
    and copied to shadow "m2" (always "1"); request 9's primary record is missing. Two
    more answered by canary "c1", one by the fallback. Ground truth for requests 0-3."""
    path = tmp_path / "log.db"
    records = []
    for i in range(10):
        ts = NOW - 100 + i * 10
        if i != 9:
            records.append(record(f"r{i}", ts, "1" if i % 2 == 0 else "0", 0.6 + i / 100))
        records.append(record(f"r{i}", ts + 0.01, "1", 0.9, "shadow", "m2"))
    records += [
        record("k0", NOW - 50, "0", 0.7, "canary", "c1"),
        record("k1", NOW - 40, "1", 0.8, "canary", "c1"),
        record("f0", NOW - 30, "0", 0.5, "fallback", "naive"),
    ]
    with SqliteLog(path) as log:
        log.prepare(StoreColumns("credit", numeric=("age",)))
        log.write(records)
        log.add_ground_truth(
            [GroundTruth(f"{r}:0", label, NOW) for r, label in [("r0", "1"), ("r1", "1"),
             ("r2", "0"), ("r3", "0"), ("k1", "1")]]
        )  # fmt: skip
    yield path


def test_a_shadow_is_paired_with_the_primarys_answers_and_its_ground_truth(db: Path) -> None:
    reader = SqliteCandidateReader(db)
    try:
        found = {w.candidate: w for w in reader.read_candidates("credit", parse_window("5m"), NOW)}
    finally:
        reader.close()
    shadow = found["m2"]
    assert (shadow.role, shadow.rows, shadow.paired) == ("shadow", 10, True)
    # Request 9 has no primary record: counted, not paired.
    assert shadow.primary.count == shadow.answers.count == 9
    pairs = sorted(zip(shadow.primary.label, shadow.answers.label, strict=True))
    assert pairs == sorted([("1" if i % 2 == 0 else "0", "1") for i in range(9)])
    sides = zip(shadow.primary.label, shadow.answers.label, shadow.answers.truth, strict=True)
    labelled = sorted((p, s, t) for p, s, t in sides if t is not None)
    assert labelled == [("0", "1", "0"), ("0", "1", "1"), ("1", "1", "0"), ("1", "1", "1")]
    assert shadow.primary.truth == shadow.answers.truth
    assert shadow.answers.score.tolist() == [0.9] * 9


def test_a_canary_is_compared_with_the_primarys_own_answers(db: Path) -> None:
    reader = SqliteCandidateReader(db)
    try:
        found = {w.candidate: w for w in reader.read_candidates("credit", parse_window("5m"), NOW)}
    finally:
        reader.close()
    canary = found["c1"]
    assert (canary.role, canary.rows, canary.paired) == ("canary", 2, False)
    assert set(canary.answers.label) == {"0", "1"}
    assert set(canary.answers.truth) == {"1", None}
    # The primary's 9 answers; neither the shadows' nor the fallback's.
    assert canary.primary.count == 9
    assert set(found) == {"m2", "c1"}


def test_windows_bound_what_is_read(db: Path) -> None:
    reader = SqliteCandidateReader(db)
    try:
        recent = reader.read_candidates("credit", parse_window("45s"), NOW)
        newest = reader.read_candidates("credit", parse_window("last_3"), NOW)
        nothing = reader.read_candidates("other", parse_window("5m"), NOW)
    finally:
        reader.close()
    # The last 45 s: shadows of requests 6-9 (9 unpaired), canary k1 (40 s old).
    by_name = {w.candidate: w for w in recent}
    assert by_name["m2"].rows == 4 and by_name["m2"].answers.count == 3
    assert by_name["c1"].rows == 1
    # The newest 3 records that are not shadows: r8 (20 s old), r7 and f0 (30 s old).
    (shadow,) = newest
    assert shadow.start_ts == NOW - 30
    assert shadow.rows == 3  # r7, r8, r9
    assert nothing == []


def test_candidates_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteLog(path) as log:
        log.write(
            [
                record(f"r{i}-{n}", NOW - 10, "1", 0.5, "canary", f"c{i}")
                for i in range(MAX_CANDIDATES + 3)
                for n in range(1 + i)
            ]
        )
    reader = open_candidate_reader(f"sqlite:///{path}")
    assert reader is not None
    try:
        found = reader.read_candidates("credit", parse_window("1m"), NOW)
    finally:
        reader.close()
    # The candidates with the most rows.
    assert [w.candidate for w in found] == [f"c{i}" for i in range(MAX_CANDIDATES + 2, 2, -1)]


def test_a_log_not_created_yet_has_no_candidates(tmp_path: Path) -> None:
    reader = SqliteCandidateReader(tmp_path / "later.db")
    assert reader.read_candidates("credit", parse_window("5m"), NOW) == []
    assert reader.read_candidates("credit", parse_window("last_10"), NOW) == []
