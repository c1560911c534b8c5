"""One bad request never costs another request's records, and nothing secret is published.

Each test sends hostile input through a real sidecar (no schema: the inferred-schema path
is the one any client reaches) in the middle of ordinary traffic, then reads the SQLite
input log back: every ordinary request's rows are there, and what was lost, if anything,
is counted.
"""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.store.sqlite.log import SqliteLog
from tests.support.processes import Sidecar, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import Samples, analysed, assert_promtool_accepts, scrape, value, wait_for


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def model_server(req: RawRequest) -> bytes:
    """Answers every v1 and v2 call with one prediction per row, whatever the rows hold."""
    try:
        payload = json.loads(req.body)
    except ValueError:
        return answer(b'{"predictions": []}')
    if req.url.startswith("/v2/"):
        rows = payload["inputs"][0]["shape"][0]
        outputs = [{"name": "p", "shape": [rows], "datatype": "FP32", "data": [0.5] * rows}]
        return answer(json.dumps({"model_version": "1", "outputs": outputs}).encode())
    rows = len(payload.get("instances", [])) or 1
    return answer(json.dumps({"predictions": [0.25] * rows}).encode())


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(model_server) as server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolation")


@pytest.fixture(scope="module")
def proxy(upstream: RawUpstream, workdir: Path) -> Iterator[Sidecar]:
    with sidecar(upstream.url, workdir, env={"MLMON_MAX_LABEL_VALUES": "3"}) as running:
        yield running


def post(url: str, path: str, body: bytes, request_id: str) -> int:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request(
        "POST", path, body=body, headers={"content-type": "application/json",
                                          "x-request-id": request_id}
    )  # fmt: skip
    response = connection.getresponse()
    response.read()
    return response.status


def get(url: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def inferred_schema(url: str, model: str, expected: str, timeout: float = 15) -> str:
    """The schema /schema serves for `model` once it names `expected` (it is sent over
    from the analysis every 2 s)."""
    deadline = time.monotonic() + timeout
    status, text = get(url, f"/schema?model={model}")
    while expected.encode() not in text and time.monotonic() < deadline:
        time.sleep(0.3)
        status, text = get(url, f"/schema?model={model}")
    assert status == 200, text
    return text.decode()


def good(url: str, request_id: str, model: str = "credit") -> None:
    rows = [{"age": 30 + i, "plan": "gold" if i % 2 else "basic"} for i in range(2)]
    body = json.dumps({"instances": rows}).encode()
    assert post(url, f"/v1/models/{model}:predict", body, request_id) == 200


def records(db: Path) -> dict[str, dict[str, object]]:
    """id -> record document, read through the store's own API."""
    if not db.exists():
        return {}
    with SqliteLog(db) as log, sqlite3.connect(db, timeout=10) as connection:
        ids = [i for (i,) in connection.execute("SELECT id FROM records")]
        documents = {i: log.document(i) for i in ids}
    return {i: d for i, d in documents.items() if d is not None}


def wait_records(db: Path, ids: set[str], timeout: float = 30) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + timeout
    found = records(db)
    while not ids <= set(found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = records(db)
    return found


def analysis_down(samples: Samples) -> float:
    return value(samples, "mlmon_log_queue_dropped_total", reason="analysis_down")


# Each of these once restarted the analysis process (no schema: the inference rejected the
# field), costing the records of every request around it.
HOSTILE = [
    ("lone surrogate", b'{"instances": [{"name": "\\ud800", "n": 1}]}', "invalid_unicode"),
    ("NUL in a key", b'{"instances": [{"a\\u0000b": 1}]}', "invalid_field_name"),
    ("150-character key", json.dumps({"instances": [{"k" * 150: 1}]}).encode(),
     "invalid_field_name"),
    ("list of lists of strings", b'{"instances": [{"a": [["s"]]}]}', None),
    ("400-digit integer", b'{"instances": [{"big": ' + b"7" * 400 + b"}]}", "non_finite_number"),
    ("NaN", b'{"instances": [{"x": NaN}]}', "non_finite_number"),
    ("Infinity", b'{"instances": [{"x": -Infinity}]}', "non_finite_number"),
    ("1e400", b'{"instances": [{"x": 1e400}]}', "non_finite_number"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_request_costs_no_other_request_its_records(
    proxy: Sidecar, workdir: Path, name: str, body: bytes, reason: str | None
) -> None:
    model = "m" + re.sub(r"\W", "", name)[:10]  # a model new to the sidecar, as in the report
    before = scrape(proxy.url)
    ids = set()
    for i in range(30):
        if i == 10:
            assert post(proxy.url, f"/v1/models/{model}:predict", body, f"bad-{model}") == 200
        request_id = f"{model}-good-{i}"
        good(proxy.url, request_id, model)
        ids |= {f"{request_id}:0", f"{request_id}:1"}
        time.sleep(0.02)
    found = wait_records(workdir / "mlmon.db", ids)
    samples = scrape(proxy.url)
    assert ids <= set(found), f"{name}: {len(ids - set(found))} records lost"
    assert analysis_down(samples) == analysis_down(before) == 0
    assert f"bad-{model}:0" in found  # the hostile request's own row is kept, cleaned
    if reason is not None:
        counted = value(samples, "mlmon_payload_parse_errors_total", reason=reason)
        assert counted == value(before, "mlmon_payload_parse_errors_total", reason=reason) + 1
    assert "internal error" not in proxy.output()
    assert "plan" in inferred_schema(proxy.url, model, "plan")


def test_credential_fields_are_never_published_or_logged_in_clear(
    proxy: Sidecar, workdir: Path
) -> None:
    secrets = {"password": "hunter2", "api_key": "AKIA-123", "session.token": "tok-9"}
    for i in range(20):
        row = {"password": secrets["password"], "api_key": secrets["api_key"], "age": 30 + i,
               "session": {"token": secrets["session.token"]}, "plan": "gold"}  # fmt: skip
        body = json.dumps({"instances": [row]}).encode()
        assert post(proxy.url, "/v1/models/login:predict", body, f"login-{i}") == 200
    found = wait_records(workdir / "mlmon.db", {f"login-{i}:0" for i in range(20)})
    schema = inferred_schema(proxy.url, "login", "password")
    assert "gold" in schema  # other categories are published
    logged = json.dumps([found[f"login-{i}:0"] for i in range(20)])
    for secret in secrets.values():
        assert secret not in schema
        assert secret not in logged
    features = found["login-0:0"]["features"]
    assert isinstance(features, dict)
    assert re.fullmatch("[0-9a-f]{16}", features["password"])
    assert features["password"] == found["login-19:0"]["features"]["password"]  # type: ignore[index]
    assert features["plan"] == "gold" and features["age"] == 30.0


def test_a_huge_request_is_sampled_and_counted_and_the_others_still_logged(
    proxy: Sidecar, workdir: Path
) -> None:
    rows = 100_000
    tensor = {"name": "x", "shape": [rows], "datatype": "FP32", "data": [0.5] * rows}
    body = json.dumps({"inputs": [tensor]}).encode()
    before = scrape(proxy.url)
    assert post(proxy.url, "/v2/models/big/infer", body, "huge") == 200
    for i in range(5):
        good(proxy.url, f"after-huge-{i}")
    wanted = {f"after-huge-{i}:{r}" for i in range(5) for r in range(2)}
    found = wait_records(workdir / "mlmon.db", wanted)
    assert wanted <= set(found)
    huge = sorted(int(i.split(":")[1]) for i in found if i.startswith("huge:"))
    assert len(huge) == 1000  # max_rows_per_request, drawn across the whole request
    assert huge[0] < 5_000 and huge[-1] > 95_000
    samples = scrape(proxy.url)
    # Not by model: past the module sidecar's label cap, "big" is "__other__" on /metrics.
    sampled_out = value(samples, "mlmon_rows_sampled_out_total")
    assert sampled_out == value(before, "mlmon_rows_sampled_out_total") + 99_000
    batch_rows = value(samples, "mlmon_batch_size_sum") - value(before, "mlmon_batch_size_sum")
    assert batch_rows >= rows  # the batch size is the request's, not the sample's


def test_a_nul_in_the_path_never_reaches_the_metrics(proxy: Sidecar, workdir: Path) -> None:
    tensor = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
    body = json.dumps({"inputs": [tensor]}).encode()
    assert post(proxy.url, "/v2/models/m%00x/infer", body, "nul-path") == 200
    found = wait_records(workdir / "mlmon.db", {"nul-path:0"})
    assert found["nul-path:0"]["model"] == "m\ufffdx"
    wait_for(proxy.url, lambda s: value(s, "mlmon_log_queue_depth") == 0)
    exposition = get(proxy.url, "/metrics")[1]
    assert b"\x00" not in exposition
    assert_promtool_accepts(exposition, lint_clean=False)


def test_past_the_label_cap_metrics_say_other_and_the_log_keeps_the_name(
    proxy: Sidecar, workdir: Path
) -> None:
    names = [f"fleet-{i}" for i in range(6)]  # the module's sidecar caps model labels at 3
    for name in names:
        good(proxy.url, f"cap-{name}", name)
    found = wait_records(workdir / "mlmon.db", {f"cap-{n}:0" for n in names})
    assert [found[f"cap-{n}:0"]["model"] for n in names] == names
    samples = wait_for(
        proxy.url, lambda s: analysed(s, "mlmon_requests_total", value(s, "mlmon_requests_total"))
    )
    labelled = {dict(labels).get("model") for (n, labels) in samples if n == "mlmon_requests_total"}
    assert "__other__" in labelled
    assert len(labelled) <= 4


def test_when_the_analysis_process_is_killed_every_record_it_held_is_counted(
    upstream: RawUpstream, tmp_path: Path
) -> None:
    with sidecar(upstream.url, tmp_path) as running:
        sent = [f"held-{i}" for i in range(40)]
        for request_id in sent:
            good(running.url, request_id)
        # Within the writer's flush interval (0.5 s): records may sit in its memory.
        children = subprocess.run(
            ["pgrep", "-f", "multiprocessing.spawn", "-P", str(running.process.pid)],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        assert children, "no analysis process"
        subprocess.run(["kill", "-9", *children], check=True)
        samples = wait_for(running.url, lambda s: analysis_down(s) > 0 or bool(records(
            tmp_path / "mlmon.db")), timeout=10)  # fmt: skip
        good(running.url, "after-restart")
        found = wait_records(tmp_path / "mlmon.db", {"after-restart:0"})
        samples = scrape(running.url)
    logged = {record_id.split(":")[0] for record_id in found} & set(sent)
    lost = len(sent) - len(logged)
    assert lost <= analysis_down(samples) <= len(sent)  # nothing lost without a count
