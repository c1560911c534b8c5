from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exporter.records import LogRecord, PredictionValue
from exporter.store.spool import Spool, claim_directory


def record(i: int) -> LogRecord:
    return LogRecord(
        id=f"r{i}:0", timestamp=1700000000.0 + i, request_id=f"r{i}", row=0, model="m",
        model_version="1", protocol="v2", status=200, latency_ms=2.5,
        features={"x": float(i), "c": "a", "gone": None}, issues=["missing:gone"],
        prediction=PredictionValue(value=0.5, label="yes", score=0.9),
    )  # fmt: skip


def test_records_come_back_oldest_first_and_equal(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=2000)
    for start in range(0, 30, 10):
        assert spool.append([record(i) for i in range(start, start + 10)]) == 10
    replayed: list[LogRecord] = []
    while (segment := spool.oldest()) is not None:
        replayed.extend(segment.records)
        spool.remove(segment)
    assert replayed == [record(i) for i in range(30)]
    assert spool.bytes == 0
    assert not spool


def test_nothing_is_appended_past_the_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)  # room for three of these records
    assert spool.append([record(0)]) == 1
    assert spool.append([record(i) for i in range(1, 20)]) == 2
    assert spool.append([record(99)]) == 0
    segment = spool.oldest()
    assert segment is not None
    assert segment.records == [record(0), record(1), record(2)]
    assert spool.bytes <= 1000


def test_a_new_spool_on_the_same_directory_replays_what_was_left(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=10_000_000)
    first.append([record(1), record(2)])
    again = Spool(tmp_path, max_bytes=10_000_000)  # a restart, even after SIGKILL
    assert again.bytes == first.bytes
    again.append([record(3)])  # goes to a new segment, after the old ones
    replayed = []
    while (segment := again.oldest()) is not None:
        replayed.extend(segment.records)
        again.remove(segment)
    assert replayed == [record(1), record(2), record(3)]


def test_a_line_torn_by_a_crash_does_not_hide_the_others(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.append([record(1), record(2)])
    (path,) = tmp_path.glob("segment-*.jsonl")
    with path.open("ab") as out:
        out.write(b'{"id": "r3:0", "@timest')  # killed mid-write
    segment = Spool(tmp_path, max_bytes=10_000_000).oldest()
    assert segment is not None
    assert segment.records == [record(1), record(2)]


def test_each_process_claims_its_own_directory_and_a_restart_the_same_one(
    tmp_path: Path,
) -> None:
    script = (
        "import sys, time; from exporter.store.spool import claim_directory; "
        "print(claim_directory(sys.argv[1]), flush=True); time.sleep(30)"
    )
    first = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    second = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert first.stdout is not None and second.stdout is not None
        claimed = {first.stdout.readline().strip(), second.stdout.readline().strip()}
        assert claimed == {str(tmp_path / "0"), str(tmp_path / "1")}
    finally:
        first.kill()
        second.kill()
        first.wait()
        second.wait()
    assert claim_directory(tmp_path) == tmp_path / "0"  # free again after the exit
